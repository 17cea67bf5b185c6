using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>The store against a real etcd.</summary>
public class StoreTests(EtcdFixture etcd) : IClassFixture<EtcdFixture>
{
    [Fact]
    public async Task Every_record_type_round_trips_through_etcd()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await Check(Kinds.Pods, Samples.Pod());
        await Check(Kinds.Nodes, Samples.Node("n1"));
        await Check(Kinds.NodeStatus, Samples.NodeStatus("n1"));
        await Check(Kinds.Workloads, Samples.Workload("3f2a9c01", tags: ["v1", "canary"], ip: "198.18.16.7"));
        await Check(Kinds.WorkloadStatus, Samples.Status("3f2a9c01", ip: "198.18.16.7"));
        await Check(Kinds.LbDomains, Samples.LbDomain());
        await Check(Kinds.SshUsers, new SshUser
        {
            Name = "ops", Keys = [Samples.SshKeyLine], Apps = new() { ["hello"] = new SshAppAccess { Shell = false, User = "app" } },
        });

        async Task Check<T>(RegistryKind<T> kind, T value) where T : class, IRegistryRecord
        {
            var rev = await store.PutAsync(kind, value);
            var got = await store.GetAsync(kind, value.KeyName);
            Assert.NotNull(got);
            Assert.Equal(rev, got.ModRevision);
            Assert.Equal(System.Text.Encoding.UTF8.GetString(kind.Encode(value)),
                System.Text.Encoding.UTF8.GetString(kind.Encode(got.Value)));
            var (all, _) = await store.ListAsync(kind);
            Assert.Single(all);
            Assert.True(await store.DeleteAsync(kind, value.KeyName));
            Assert.Null(await store.GetAsync(kind, value.KeyName));
            Assert.False(await store.DeleteAsync(kind, value.KeyName));
        }
    }

    [Fact]
    public async Task List_reads_past_one_page_at_one_revision_and_reports_bad_values()
    {
        var prefix = EtcdFixture.NewPrefix();
        var (conn, store) = etcd.Connect(prefix);
        using var _ = conn;
        var n = RegistryStore.PageSize + 150;
        for (var i = 0; i < n; i += 100) // etcd allows 128 operations per txn by default
        {
            var tx = store.Begin();
            for (var j = i; j < Math.Min(n, i + 100); j++) tx.Put(Kinds.Workloads, Samples.Workload($"w{j:D5}"));
            Assert.True(await tx.CommitAsync());
        }
        await RawPut(conn, prefix + "/workloads/broken", "{not json");
        var bad = new List<RegistryValueException>();
        var (items, rev) = await store.ListAsync(Kinds.Workloads, bad.Add);
        Assert.Equal(n, items.Count);
        Assert.Equal(n, items.Select(i => i.Value.Id).Distinct().Count());
        Assert.True(rev > 0);
        var problem = Assert.Single(bad);
        Assert.Equal("broken", problem.KeyName);
    }

    [Fact]
    public async Task A_large_list_read_in_tiles_gives_every_key_once_in_key_order()
    {
        var prefix = EtcdFixture.NewPrefix();
        var (conn, store) = etcd.Connect(prefix);
        using var _ = conn;
        // Past four pages: the range is then read in tiles by the id's first character. Hex ids as Docker makes them,
        // and a few that are not hex at all (they fall in the first or last tile).
        var ids = Enumerable.Range(0, 4 * RegistryStore.PageSize + 700)
            .Select(i => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)))[..16])
            .Concat(["-odd", "zz-top", "Upper"]).ToList();
        foreach (var chunk in ids.Chunk(60))
        {
            var tx = store.Begin();
            foreach (var id in chunk)
            {
                tx.Put(Kinds.Workloads, Samples.Workload(id));
                tx.Put(Kinds.WorkloadStatus, Samples.Status(id));
            }
            Assert.True(await tx.CommitAsync());
        }
        await store.PutAsync(Kinds.Pods, Samples.Pod("p1"));
        var keys = new List<string>();
        var rev = await store.RangePagesAsync(store.Keys.Root, 0, page => keys.AddRange(page.Select(kv => kv.Key.ToStringUtf8())),
            CancellationToken.None);
        Assert.True(rev > 0);
        Assert.Equal(2 * ids.Count + 1, keys.Count);
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys); // statuses before records, each in id order
    }

    [Fact]
    public async Task Create_only_creates_once()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        Assert.True(await store.CreateAsync(Kinds.Pods, Samples.Pod("p1")));
        Assert.False(await store.CreateAsync(Kinds.Pods, Samples.Pod("p1") with { Description = "second" }));
        Assert.Equal("test pod", (await store.GetAsync(Kinds.Pods, "p1"))!.Value.Description);
    }

    [Fact]
    public async Task A_transaction_whose_read_key_changed_does_not_commit()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await store.PutAsync(Kinds.Nodes, Samples.Node("n1"));

        var tx = store.Begin();
        var node = (await tx.GetAsync(Kinds.Nodes, "n1"))!.Value;
        tx.Put(Kinds.Nodes, node with { Unschedulable = true });
        tx.Put(Kinds.Pods, Samples.Pod("written-with-it"));

        await store.PutAsync(Kinds.Nodes, node with { Labels = StringMap.Of(("concurrent", "yes")) }); // another writer
        Assert.False(await tx.CommitAsync());

        var now = (await store.GetAsync(Kinds.Nodes, "n1"))!.Value;
        Assert.False(now.Unschedulable);
        Assert.Equal("yes", now.Labels["concurrent"]);
        Assert.Null(await store.GetAsync(Kinds.Pods, "written-with-it")); // all or nothing
    }

    [Fact]
    public async Task A_range_read_is_guarded_against_keys_created_meanwhile()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await store.PutAsync(Kinds.Workloads, Samples.Workload("w1"));
        var tx = store.Begin();
        Assert.Single(await tx.ListAsync(Kinds.Workloads));
        tx.Put(Kinds.Workloads, Samples.Workload("w3"));
        await store.PutAsync(Kinds.Workloads, Samples.Workload("w2")); // a concurrent deploy on the same node
        Assert.False(await tx.CommitAsync());
    }

    [Fact]
    public async Task Concurrent_updates_are_retried_and_none_is_lost()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        await store.PutAsync(Kinds.Pods, Samples.Pod("counter") with { Labels = StringMap.Of(("n", "0")) });
        const int writers = 8, each = 10;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < each; i++)
                await store.UpdateAsync(Kinds.Pods, "counter", p => p! with
                {
                    Labels = StringMap.Of(("n", (int.Parse(p.Labels["n"]) + 1).ToString()), ($"w{w}", i.ToString())),
                });
        })));
        var final = (await store.GetAsync(Kinds.Pods, "counter"))!.Value;
        Assert.Equal((writers * each).ToString(), final.Labels["n"]);
    }

    [Fact]
    public async Task A_status_key_disappears_when_its_lease_expires()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(1), keepAlive: false);
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("w1"), lease.Id);
        var got = await store.GetAsync(Kinds.WorkloadStatus, "w1");
        Assert.Equal(lease.Id, got!.Lease);
        // Nobody renews it: etcd deletes the key after the TTL (etcd may round a 1 s TTL up).
        var deadline = DateTime.UtcNow + lease.Ttl + TimeSpan.FromSeconds(5);
        while (await store.GetAsync(Kinds.WorkloadStatus, "w1") is not null)
        {
            Assert.True(DateTime.UtcNow < deadline, "status key outlived its lease");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_kept_lease_outlives_its_ttl_and_revoking_it_deletes_its_keys()
    {
        var (conn, store) = etcd.Connect();
        using var _ = conn;
        // Long enough that a slow etcd (a busy machine) still has the lease when the put arrives.
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(5));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        await Task.Delay(lease.Ttl + TimeSpan.FromSeconds(1));
        Assert.NotNull(await store.GetAsync(Kinds.NodeStatus, "n1"));
        Assert.False(lease.IsLost);
        await lease.DisposeAsync();
        Assert.Null(await store.GetAsync(Kinds.NodeStatus, "n1"));
    }

    internal static async Task RawPut(Registry.Etcd.EtcdConnection conn, string key, string value) =>
        await conn.KV.PutAsync(new Etcdserverpb.PutRequest
        {
            Key = Google.Protobuf.ByteString.CopyFromUtf8(key),
            Value = Google.Protobuf.ByteString.CopyFromUtf8(value),
        });
}
