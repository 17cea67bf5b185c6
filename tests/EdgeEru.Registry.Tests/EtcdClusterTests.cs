using System.Diagnostics;
using EdgeEru.Dev;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Registry.Tests;

/// <summary>
/// A 3-member etcd under a steady stream of writes, a watcher and a lease: the leader killed, the member the
/// clients use frozen, the whole cluster restarted. Writes move on to another member, no acknowledged write is
/// lost, the watcher ends with exactly what etcd holds, and the lease outlives the member faults.
/// </summary>
public sealed class EtcdClusterTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);

    public void Dispose() => _logs.Dispose();

    [Fact]
    public async Task Writes_watch_and_lease_survive_the_leader_killed_a_member_frozen_and_the_whole_cluster_restarted()
    {
        await using var cluster = await EtcdCluster.StartAsync(3, log: _logs.CreateLogger("etcd"));
        var options = new RegistryOptions
        {
            Endpoints = cluster.Endpoints, Prefix = EtcdFixture.NewPrefix(),
            RequestTimeout = TimeSpan.FromSeconds(2), KeepAlive = TimeSpan.FromSeconds(1),
        };
        using var writerConn = new EtcdConnection(options);
        using var watcherConn = new EtcdConnection(options);
        using var leaseConn = new EtcdConnection(options);
        var store = new RegistryStore(writerConn);
        await using var watcher = new RegistryWatcher(watcherConn, _logs.CreateLogger<RegistryWatcher>());
        watcher.Start();
        await watcher.Ready.WaitAsync(Wait);
        var leaseStore = new RegistryStore(leaseConn);
        await using var lease = await leaseStore.GrantLeaseAsync(TimeSpan.FromSeconds(8));
        await leaseStore.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);

        // The load: one pod after the other, as fast as etcd takes them; a failed write is counted and retried later.
        var acked = new List<string>();
        var failed = 0;
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                var name = $"p{i:D6}";
                try
                {
                    await store.PutAsync(Kinds.Pods, Samples.Pod(name));
                    lock (acked) acked.Add(name);
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref failed);
                    await Task.Delay(50);
                }
            }
        });
        int Acked()
        {
            lock (acked) return acked.Count;
        }
        async Task<double> RecoveredAsync(string fault)
        {
            var (from, failedBefore, clock) = (Acked(), Volatile.Read(ref failed), Stopwatch.StartNew());
            await Eventually.True(() => Acked() >= from + 50, Wait, $"writes go on after {fault}");
            output.WriteLine($"{fault}: 50 more writes acknowledged after {clock.Elapsed.TotalSeconds:0.00} s, " +
                $"{Volatile.Read(ref failed) - failedBefore} failed meanwhile; failovers {writerConn.Failovers}");
            return clock.Elapsed.TotalSeconds;
        }
        await Eventually.True(() => Acked() >= 50, Wait, "writes under way");

        // 1. The leader dies (SIGKILL); a new one is elected, and writes go on through the members left.
        var leader = await cluster.LeaderAsync();
        Assert.InRange(leader, 0, 2);
        await cluster.Members[leader].StopAsync(kill: true);
        await RecoveredAsync($"leader {cluster.Members[leader].Name} killed");
        Assert.NotEqual(leader, await cluster.LeaderAsync());
        await cluster.Members[leader].StartAsync();
        Assert.False(lease.IsLost);

        // 2. The member the writer is on freezes (SIGSTOP): calls time out and the writer moves on.
        var current = cluster.Members.Single(m => m.ClientUrl == writerConn.CurrentEndpoint.ToString().TrimEnd('/'));
        var failoversBefore = writerConn.Failovers;
        Posix.Freeze(current.ProcessId!.Value);
        try
        {
            await RecoveredAsync($"member {current.Name} frozen");
            Assert.True(writerConn.Failovers > failoversBefore);
        }
        finally
        {
            Posix.Resume(current.ProcessId!.Value);
        }
        Assert.False(lease.IsLost);

        // 3. Every member restarts at once: nothing is written meanwhile, then everything goes on.
        await cluster.StopAllAsync();
        await Task.Delay(500);
        await cluster.StartAllAsync();
        await RecoveredAsync("whole cluster restarted");

        await stop.CancelAsync();
        await writer;
        output.WriteLine($"{Acked()} writes acknowledged, {failed} failed (and retried as new writes) over the run");

        // No acknowledged write lost; the watcher's snapshot is exactly etcd's.
        var (pods, revision) = await store.ListAsync(Kinds.Pods);
        var inEtcd = pods.Select(p => p.Value.Name).ToHashSet();
        List<string> ackedNames;
        lock (acked) ackedNames = [.. acked];
        Assert.DoesNotContain(ackedNames, n => !inEtcd.Contains(n));
        var snapshot = await watcher.WaitForRevisionAsync(revision).WaitAsync(Wait);
        Assert.Equal(inEtcd.Order(), snapshot.Pods.Keys.Order());
        Assert.True(snapshot.IsNodeAlive("n1"), "the heartbeat under the lease is still there");
    }
}
