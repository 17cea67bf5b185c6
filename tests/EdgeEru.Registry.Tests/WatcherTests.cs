using EdgeEru.Dev;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Etcdserverpb;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Registry.Tests;

/// <summary>The watcher against a real etcd: order, liveness, bad values, restarts, compaction.</summary>
public sealed class WatcherTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);

    public void Dispose() => _logs.Dispose();

    private RegistryWatcher NewWatcher(EtcdConnection conn)
    {
        var w = new RegistryWatcher(conn, _logs.CreateLogger<RegistryWatcher>());
        w.Start();
        return w;
    }

    [Fact]
    public async Task Changes_arrive_in_revision_order_as_create_update_delete()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);
        // Ready is the first list; writes made before the watch is up would come as one catch-up batch.
        await Eventually.True(() => watcher.InTouch, Wait, "the watch up");

        var seen = new List<(long Rev, string? Tags)>();
        using var sub = watcher.Subscribe(s =>
        {
            lock (seen) seen.Add((s.Revision, s.Workloads.TryGetValue("w1", out var v) ? string.Join(",", v.Record!.Tags) : null));
        });
        var r1 = await store.PutAsync(Kinds.Workloads, Samples.Workload("w1", tags: ["a"]));
        var r2 = await store.PutAsync(Kinds.Workloads, Samples.Workload("w1", tags: ["b"]));
        await store.DeleteAsync(Kinds.Workloads, "w1");
        var r3 = await store.PutAsync(Kinds.Pods, Samples.Pod("after"));
        var last = await watcher.WaitForRevisionAsync(r3).WaitAsync(Wait);

        Assert.False(last.Workloads.ContainsKey("w1"));
        Assert.True(last.Pods.ContainsKey("after"));
        List<(long Rev, string? Tags)> log;
        lock (seen) log = [.. seen];
        var revisions = log.Select(s => s.Rev).ToList();
        Assert.Equal(revisions.Order(), revisions); // never goes back
        var states = log.Where(s => s.Rev >= r1).Select(s => s.Tags).Distinct().ToList();
        Assert.Equal(["a", "b", null], states);
        Assert.Contains(log, s => s.Rev == r2 && s.Tags == "b");
    }

    [Fact]
    public async Task A_write_of_private_keys_alone_still_moves_the_watcher_to_its_revision()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);
        // Followers never see the private root, yet a reader waiting for "what I wrote" must get there.
        var put = await store.PutAsync(Kinds.Intents,
            new Registry.Model.Intent { Id = "create-1", Core = "c1", Op = Registry.Model.Intent.Create, Node = "h1", Target = "x_y_1" });
        Assert.True((await watcher.WaitForRevisionAsync(put).WaitAsync(Wait)).Revision >= put);
        Assert.True(await store.DeleteAsync(Kinds.Intents, "create-1"));
        var (_, deleted) = await store.ListAsync(Kinds.Pods);
        Assert.True((await watcher.WaitForRevisionAsync(deleted).WaitAsync(Wait)).Revision >= deleted);
        Assert.Empty(watcher.Current.Problems); // the sync key is nobody's record
    }

    [Fact]
    public async Task A_transaction_is_published_as_one_snapshot()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);
        var snapshots = new List<RegistrySnapshot>();
        using var sub = watcher.Subscribe(s => { lock (snapshots) snapshots.Add(s); });
        var tx = store.Begin();
        tx.Put(Kinds.NodeStatus, Samples.NodeStatus("n1"));
        tx.Put(Kinds.Workloads, Samples.Workload("w1"));
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        tx.Put(Kinds.WorkloadStatus, Samples.Status("w1"), lease.Id);
        Assert.True(await tx.CommitAsync());
        var s = await watcher.WaitForRevisionAsync(tx.CommitRevision).WaitAsync(Wait);
        Assert.True(s.IsLive("w1"));
        lock (snapshots) Assert.DoesNotContain(snapshots, x => x.Workloads.ContainsKey("w1") && !x.IsLive("w1"));
    }

    [Fact]
    public async Task Liveness_follows_status_lease_and_node_heartbeat_in_etcd()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);

        var nodeLease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        var statusLease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(1), keepAlive: false);
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), nodeLease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload("w1", ip: "198.18.16.4"));
        var rev = await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("w1", ip: "198.18.16.4"), statusLease.Id);
        Assert.True((await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait)).IsLive("w1"));

        // The agent stops renewing: its status vanishes with the lease, and the workload with it.
        await Eventually.True(() => !watcher.Current.IsLive("w1"), Wait, "w1 dropped when its status lease expired");
        Assert.False(watcher.Current.Workloads["w1"].Status is not null);
        Assert.Null(watcher.Current.LiveAt("198.18.16.4"));

        // A status written again under a live lease brings it back; the node's heartbeat going away takes it out.
        await using var statusLease2 = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        rev = await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("w1"), statusLease2.Id);
        Assert.True((await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait)).IsLive("w1"));
        await nodeLease.DisposeAsync();
        await Eventually.True(() => !watcher.Current.IsLive("w1") && !watcher.Current.IsNodeAlive("n1"), Wait,
            "w1 dropped with its node's heartbeat");
    }

    [Fact]
    public async Task A_corrupt_value_is_skipped_with_its_key_named_and_the_watcher_goes_on()
    {
        var prefix = EtcdFixture.NewPrefix();
        var (conn, store) = etcd.Connect(prefix);
        using var _ = conn;
        await StoreTests.RawPut(conn, prefix + "/nodes/broken", "{\"v\":1,\"name\":");
        await store.PutAsync(Kinds.Nodes, Samples.Node("good"));
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);
        var s = watcher.Current;
        Assert.True(s.Nodes.ContainsKey("good"));
        Assert.False(s.Nodes.ContainsKey("broken"));
        Assert.Contains("invalid JSON", s.Problems["nodes/broken"]);

        // Live: a good value replaced by garbage keeps the last good one; later changes still apply.
        await StoreTests.RawPut(conn, prefix + "/nodes/good", "\u0000\u0001garbage");
        var rev = await store.PutAsync(Kinds.Pods, Samples.Pod("next"));
        s = await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait);
        Assert.True(s.Nodes.ContainsKey("good"));
        Assert.True(s.Problems.ContainsKey("nodes/good"));
        Assert.True(s.Pods.ContainsKey("next"));
        Assert.Equal(2, watcher.SkippedValues);
    }

    [Fact]
    public async Task The_watcher_keeps_its_snapshot_while_etcd_is_down_and_catches_up_after_a_restart()
    {
        await using var server = await EtcdServer.StartAsync();
        using var conn = new EtcdConnection(etcd.Options(url: server.ClientUrl));
        var store = new RegistryStore(conn);
        await store.PutAsync(Kinds.Nodes, Samples.Node("n1"));
        await using var watcher = NewWatcher(conn);
        await watcher.Ready.WaitAsync(Wait);
        await Eventually.True(() => watcher.InTouch, Wait, "watch established");
        var before = watcher.Current;

        await server.StopAsync(kill: true);
        await Eventually.True(() => !watcher.InTouch, Wait, "watcher notices etcd is gone");
        await Task.Delay(500);
        Assert.Same(before, watcher.Current); // subscribers keep the last snapshot
        Assert.True(watcher.OutOfTouchFor > TimeSpan.Zero);

        await server.StartAsync();
        var rev = await store.PutAsync(Kinds.Nodes, Samples.Node("n2"));
        var s = await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait);
        Assert.True(s.Nodes.ContainsKey("n1") && s.Nodes.ContainsKey("n2"));
        await Eventually.True(() => watcher.InTouch && watcher.OutOfTouchFor == TimeSpan.Zero, Wait, "back in touch");
        Assert.Equal(1, watcher.Relists); // resumed from its revision, no full list needed
    }

    [Fact]
    public async Task After_compaction_past_its_revision_the_watcher_lists_again_and_loses_no_change()
    {
        // The watcher reaches etcd through a proxy we can cut; the writer goes direct.
        await using var proxy = new TcpProxy(etcd.Server.ClientPort);
        var prefix = EtcdFixture.NewPrefix();
        using var watchConn = new EtcdConnection(etcd.Options(prefix, proxy.Url));
        var (conn, store) = etcd.Connect(prefix);
        using var _ = conn;
        await store.PutAsync(Kinds.Workloads, Samples.Workload("gone-while-away"));
        await store.PutAsync(Kinds.Workloads, Samples.Workload("changed-while-away", tags: ["old"]));
        await using var watcher = NewWatcher(watchConn);
        await watcher.Ready.WaitAsync(Wait);
        await Eventually.True(() => watcher.InTouch, Wait, "watch established");

        proxy.Cut();
        await Eventually.True(() => !watcher.InTouch, Wait, "watcher notices the partition");
        await store.DeleteAsync(Kinds.Workloads, "gone-while-away");
        await store.PutAsync(Kinds.Workloads, Samples.Workload("changed-while-away", tags: ["new"]));
        var rev = await store.PutAsync(Kinds.Workloads, Samples.Workload("added-while-away"));
        await conn.KV.CompactAsync(new CompactionRequest { Revision = rev, Physical = true });
        proxy.Restore();

        var s = await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait);
        Assert.False(s.Workloads.ContainsKey("gone-while-away"));
        Assert.Equal(["new"], s.Workloads["changed-while-away"].Record!.Tags);
        Assert.True(s.Workloads.ContainsKey("added-while-away"));
        Assert.Equal(2, watcher.Relists);

        // And it keeps following afterwards.
        rev = await store.PutAsync(Kinds.Pods, Samples.Pod("later"));
        Assert.True((await watcher.WaitForRevisionAsync(rev).WaitAsync(Wait)).Pods.ContainsKey("later"));
    }
}
