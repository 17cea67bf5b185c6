using EdgeEru.Dev;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Registry.Tests;

/// <summary>
/// A registry flap (etcd stalled past the lease TTL: every lease expires at once when it returns, then the agents
/// write everything again) is not served as "nothing is live" by a follower with Registry:LivenessGrace.
/// </summary>
public sealed class RegistryFlapTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);

    public void Dispose() => _logs.Dispose();

    // --- the hold itself, on a clock of our own

    private long _nowMs = 1_000;

    private HeldDeletions Held(int graceMs) => new(TimeSpan.FromMilliseconds(graceMs), () => _nowMs);

    private static RegistrySnapshot Serving(params string[] ids) => RegistrySnapshot.Build(
    [
        RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1"), 7),
        .. ids.Select(id => RegistryChange.Put(Kinds.Workloads, Samples.Workload(id))),
        .. ids.Select(id => RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id), 7)),
    ], 10);

    [Fact]
    public void A_deleted_heartbeat_or_status_is_held_for_the_grace_then_applied()
    {
        var held = Held(3000);
        var current = Serving("w1", "w2");
        var changes = new List<RegistryChange>
        {
            RegistryChange.Delete(Kinds.NodeStatus, "n1"),
            RegistryChange.Delete(Kinds.WorkloadStatus, "w1"),
            RegistryChange.Delete(Kinds.Workloads, "w2"), // a record: Core deleted it on purpose, at once
            RegistryChange.Delete(Kinds.WorkloadStatus, "never-served"),
        };
        Assert.Equal(2, held.Filter(current, changes));
        Assert.Equal(["workloads/w2", "workload-status/never-served"], changes.Select(c => c.Kind.Segment + "/" + c.Name));
        var next = current.Apply(changes, 11);
        Assert.True(next.IsLive("w1"));
        Assert.True(next.IsNodeAlive("n1"));
        Assert.Equal(1_000 + 3000, held.NextDue);

        _nowMs += 2999;
        Assert.Empty(held.TakeDue());
        _nowMs += 1;
        var due = held.TakeDue();
        Assert.Equal(["n1", "w1"], due.Select(c => c.Name).Order());
        Assert.All(due, c => Assert.True(c.IsDelete));
        Assert.False(next.Apply(due, 11).IsLive("w1"));
        Assert.Equal(2, held.Applied);
        Assert.Null(held.NextDue);
    }

    [Fact]
    public void A_key_written_again_within_the_grace_ends_its_hold_and_a_second_deletion_does_not_extend_it()
    {
        var held = Held(3000);
        var current = Serving("w1");
        var first = new List<RegistryChange>
        {
            RegistryChange.Delete(Kinds.WorkloadStatus, "w1"), RegistryChange.Delete(Kinds.NodeStatus, "n1"),
        };
        held.Filter(current, first);
        _nowMs += 1000;
        var again = new List<RegistryChange>
        {
            RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1"), 8),
            RegistryChange.Delete(Kinds.WorkloadStatus, "w1"),
        };
        Assert.Equal(0, held.Filter(current, again));
        Assert.Single(again); // the put goes through; the repeated deletion stays held, due at the first one's time
        Assert.Equal(1, held.Rewritten);
        _nowMs += 2000;
        Assert.Equal(["w1"], held.TakeDue().Select(c => c.Name));
    }

    [Fact]
    public void Without_grace_nothing_is_held()
    {
        var held = Held(0);
        var changes = new List<RegistryChange> { RegistryChange.Delete(Kinds.NodeStatus, "n1") };
        Assert.Equal(0, held.Filter(Serving("w1"), changes));
        Assert.Single(changes);
        Assert.Equal(0, held.HoldMissing(Serving("w1"), []));
    }

    [Fact]
    public void A_full_list_that_lacks_the_last_snapshots_heartbeats_and_statuses_keeps_them_for_the_grace()
    {
        var held = Held(3000);
        var previous = Serving("w1", "w2");
        var state = new List<RegistryChange>
        {
            RegistryChange.Put(Kinds.Workloads, Samples.Workload("w1")),
            RegistryChange.Put(Kinds.Workloads, Samples.Workload("w2")),
            RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("w2"), 9), // w2's agent already wrote it again
        };
        Assert.Equal(2, held.HoldMissing(previous, state)); // n1's heartbeat, w1's status
        var listed = RegistrySnapshot.Build(state, 20);
        Assert.True(listed.IsLive("w1"));
        Assert.Equal(9, listed.Workloads["w2"].StatusLease);
        _nowMs += 3000;
        Assert.Equal(2, held.TakeDue().Count);
    }

    // --- a real flap: etcd frozen for twice the lease TTL

    [Fact]
    public async Task Etcd_frozen_past_the_lease_ttl_is_not_served_as_nothing_live_and_a_dead_node_still_leaves()
    {
        await using var server = await EtcdServer.StartAsync(log: _logs.CreateLogger("etcd"));
        var prefix = EtcdFixture.NewPrefix();
        RegistryOptions Options(TimeSpan grace) => new()
        {
            Endpoints = server.ClientUrl, Prefix = prefix, RequestTimeout = TimeSpan.FromSeconds(2), KeepAlive = TimeSpan.FromSeconds(1),
            LivenessGrace = grace,
        };
        using var agentConn = new EtcdConnection(Options(TimeSpan.Zero));
        using var graceConn = new EtcdConnection(Options(TimeSpan.FromSeconds(4)));
        using var plainConn = new EtcdConnection(Options(TimeSpan.Zero));
        var store = new RegistryStore(agentConn);
        await using var withGrace = new RegistryWatcher(graceConn, _logs.CreateLogger<RegistryWatcher>());
        await using var without = new RegistryWatcher(plainConn, _logs.CreateLogger<RegistryWatcher>());
        withGrace.Start();
        without.Start();

        // An agent's keys: a heartbeat and three statuses under one lease (TTL 2 s), the records without one.
        string[] ids = ["w1", "w2", "w3"];
        foreach (var id in ids) await store.PutAsync(Kinds.Workloads, Samples.Workload(id));
        var ttl = TimeSpan.FromSeconds(2);
        var lease = await store.GrantLeaseAsync(ttl);
        async Task WriteKeysAsync(long leaseId)
        {
            await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), leaseId);
            foreach (var id in ids) await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id), leaseId);
        }
        await WriteKeysAsync(lease.Id);
        await Eventually.True(() => withGrace.Current.LiveCount == 3 && without.Current.LiveCount == 3, Wait, "3 live in both followers");

        var fewest = new int[] { 3, 3 };
        using var s1 = withGrace.Subscribe(s => Interlocked.Exchange(ref fewest[0], Math.Min(Volatile.Read(ref fewest[0]), s.LiveCount)));
        using var s2 = without.Subscribe(s => Interlocked.Exchange(ref fewest[1], Math.Min(Volatile.Read(ref fewest[1]), s.LiveCount)));

        // etcd stalls for twice the TTL: the lease is lost; when etcd is back it is revoked (as the agent does
        // with a lost lease), and the agent comes back a moment later, after the follower without grace saw it gone.
        Posix.Freeze(server.ProcessId!.Value);
        try
        {
            await Task.Delay(2 * ttl);
        }
        finally
        {
            Posix.Resume(server.ProcessId!.Value);
        }
        Assert.True(lease.IsLost);
        await lease.DisposeAsync();
        await Eventually.True(() => without.Current.LiveCount == 0, Wait, "the follower without grace sees nothing live");
        Assert.Equal(3, withGrace.Current.LiveCount);
        await using var fresh = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await WriteKeysAsync(fresh.Id);
        await Eventually.True(() => without.Current.LiveCount == 3 && withGrace.HeldCount == 0
            && ids.All(id => withGrace.Current.Workloads[id].StatusLease == fresh.Id), Wait, "statuses under the new lease");

        output.WriteLine($"fewest live: {fewest[0]} with grace, {fewest[1]} without");
        Assert.Equal(3, fewest[0]);
        Assert.Equal(0, fewest[1]);

        // A node that really died: its keys go, and after the grace they are gone for the follower too.
        await fresh.DisposeAsync();
        await Eventually.True(() => without.Current.LiveCount == 0 && withGrace.HeldCount == 4, Wait, "gone without grace, held with it");
        Assert.Equal(3, withGrace.Current.LiveCount);
        await Eventually.True(() => withGrace.Current.LiveCount == 0 && !withGrace.Current.IsNodeAlive("n1"), Wait, "gone after the grace");
        Assert.Equal(0, withGrace.HeldCount);
    }
}
