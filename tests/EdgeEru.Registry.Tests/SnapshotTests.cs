using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>Pure snapshot logic: liveness, indexes, incremental updates, bad values. No etcd.</summary>
public class SnapshotTests
{
    private static RegistryChange Put(RegistryKind kind, IRegistryRecord v, long lease = 0) => RegistryChange.Put(kind, v, lease);

    private static RegistrySnapshot LiveOne(string id = "w1") => RegistrySnapshot.Empty.Apply(
    [
        Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
        Put(Kinds.Workloads, Samples.Workload(id, tags: ["v1", "canary"], ip: "198.18.16.1")),
        Put(Kinds.WorkloadStatus, Samples.Status(id, ip: "198.18.16.1"), lease: 7),
    ], 3);

    [Fact]
    public void A_workload_with_record_healthy_leased_status_and_live_node_is_live_and_indexed()
    {
        var s = LiveOne();
        Assert.True(s.IsLive("w1"));
        Assert.Equal(3, s.Revision);
        Assert.Equal(1, s.LiveCount);
        Assert.Equal("w1", Assert.Single(s.Live("shop", "web")).Id);
        Assert.Single(s.LiveWithTag("shop", "web", "canary"));
        Assert.Empty(s.LiveWithTag("shop", "web", "v2"));
        Assert.Single(s.LiveWithLabel("team", "core"));
        Assert.Single(s.LiveOnNode("n1"));
        Assert.Equal("w1", s.LiveAt("198.18.16.1")!.Id);
    }

    [Fact]
    public void Each_of_the_four_liveness_conditions_is_required()
    {
        var live = LiveOne();
        // 1. the record exists
        var noRecord = live.Apply([RegistryChange.Delete(Kinds.Workloads, "w1")], 4);
        Assert.False(noRecord.IsLive("w1"));
        Assert.Empty(noRecord.Live("shop", "web"));
        Assert.NotNull(noRecord.Workloads["w1"].Status); // the status alone is kept, not live
        // 2. the status says running and healthy
        var unhealthy = live.Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1", healthy: false), 7)], 4);
        Assert.False(unhealthy.IsLive("w1"));
        var stopped = live.Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1", running: false), 7)], 4);
        Assert.False(stopped.IsLive("w1"));
        // 3. the status is under a lease (a lease-less status could outlive its agent forever)
        var noLease = live.Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1"), lease: 0)], 4);
        Assert.False(noLease.IsLive("w1"));
        var leaseExpired = live.Apply([RegistryChange.Delete(Kinds.WorkloadStatus, "w1")], 4);
        Assert.False(leaseExpired.IsLive("w1"));
        // 4. the node's heartbeat exists
        var nodeDead = live.Apply([RegistryChange.Delete(Kinds.NodeStatus, "n1")], 4);
        Assert.False(nodeDead.IsLive("w1"));
        Assert.Empty(nodeDead.LiveOnNode("n1"));
        Assert.Null(nodeDead.LiveAt("198.18.16.1"));
        Assert.Equal(0, nodeDead.LiveCount);
        // ...and it comes back with the heartbeat.
        Assert.True(nodeDead.Apply([Put(Kinds.NodeStatus, Samples.NodeStatus("n1"))], 5).IsLive("w1"));
        // Snapshots are immutable: the first one is unchanged by all of this.
        Assert.True(live.IsLive("w1"));
    }

    [Fact]
    public void A_bad_value_keeps_the_last_good_one_and_is_reported_until_fixed()
    {
        var live = LiveOne();
        var bad = live.Apply([new RegistryChange(Kinds.Workloads, "w1", null, 0, "invalid JSON")], 4);
        Assert.True(bad.IsLive("w1"));
        Assert.Equal("invalid JSON", bad.Problems["workloads/w1"]);
        var fixedUp = bad.Apply([Put(Kinds.Workloads, Samples.Workload("w1", tags: ["v2"], ip: "198.18.16.1"))], 5);
        Assert.Empty(fixedUp.Problems);
        Assert.Single(fixedUp.LiveWithTag("shop", "web", "v2"));
        Assert.Empty(fixedUp.LiveWithTag("shop", "web", "v1"));
    }

    [Fact]
    public void Moving_a_workload_between_services_and_nodes_moves_it_in_every_index()
    {
        var s = LiveOne().Apply(
        [
            Put(Kinds.NodeStatus, Samples.NodeStatus("n2")),
            Put(Kinds.Workloads, Samples.Workload("w1", app: "blog", node: "n2", ip: "198.18.16.1")),
            Put(Kinds.WorkloadStatus, Samples.Status("w1", node: "n2", ip: "198.18.16.2"), 7),
        ], 9);
        Assert.Empty(s.Live("shop", "web"));
        Assert.Single(s.Live("blog", "web"));
        Assert.Empty(s.LiveOnNode("n1"));
        Assert.Equal(["w1"], s.IdsByNode["n2"].ToArray());
        Assert.False(s.IdsByNode.ContainsKey("n1"));
        Assert.Null(s.LiveAt("198.18.16.1")); // the observed address replaced the requested one
        Assert.Equal("w1", s.LiveAt("198.18.16.2")!.Id);
    }

    [Fact]
    public void IPv6_addresses_are_indexed_beside_IPv4_in_any_spelling_and_leave_with_the_status()
    {
        var s = LiveOne().Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1", ip: "198.18.16.1", ip6: "FD00:E0::17"), 7)], 4);
        Assert.Equal("w1", s.LiveAt("198.18.16.1")!.Id);
        Assert.Equal("w1", s.LiveAt("fd00:e0::17")!.Id);
        Assert.Equal("w1", s.LiveAt("fd00:00e0:0000:0000:0000:0000:0000:0017")!.Id);
        Assert.True(s.LiveByIp.ContainsKey("fd00:00e0:0000:0000:0000:0000:0000:0017")); // the key written in full
        Assert.True(s.Workloads.TryGetValue("w1", out var view));
        Assert.Equal("FD00:E0::17", view.Address6("eru-mv"));
        Assert.Equal(("eru-mv", "198.18.16.1"), Assert.Single(view.Addresses())); // the IPv4 list stays IPv4
        var gone = s.Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1", ip: "198.18.16.1"), 7)], 5);
        Assert.Null(gone.LiveAt("fd00:e0::17"));
        Assert.Equal("w1", gone.LiveAt("198.18.16.1")!.Id);
        Assert.Equal(2, s.LiveByIp.Count);
    }

    /// <summary>
    /// Property: any sequence of changes applied one batch at a time gives the same snapshot as
    /// building from the final state at once (the two code paths of the watcher).
    /// </summary>
    [Fact]
    public void Incremental_updates_equal_a_full_build_of_the_final_state()
    {
        for (var seed = 1; seed <= 60; seed++)
        {
            var rnd = new Random(seed);
            var state = new Dictionary<(RegistryKind, string), RegistryChange>();
            var snapshot = RegistrySnapshot.Empty;
            var rev = 0L;
            for (var step = 0; step < 40; step++)
            {
                var batch = new List<RegistryChange>();
                for (var i = rnd.Next(1, 5); i > 0; i--)
                {
                    var c = RandomChange(rnd);
                    batch.Add(c);
                    if (c.IsDelete) state.Remove((c.Kind, c.Name));
                    else if (c.Problem is null) state[(c.Kind, c.Name)] = c;
                }
                snapshot = snapshot.Apply(batch, ++rev);
            }
            var full = RegistrySnapshot.Build(state.Values, rev);
            Assert.True(Describe(full) == Describe(snapshot), $"seed {seed}:\nfull:\n{Describe(full)}\nincremental:\n{Describe(snapshot)}");
        }
    }

    [Fact]
    public void A_full_build_fed_page_by_page_in_key_order_equals_one_built_from_the_state_in_any_order()
    {
        for (var seed = 1; seed <= 60; seed++)
        {
            var rnd = new Random(seed);
            var state = new Dictionary<(RegistryKind, string), RegistryChange>();
            for (var i = 0; i < 60; i++)
            {
                var c = RandomChange(rnd);
                if (c.IsDelete) state.Remove((c.Kind, c.Name));
                else state[(c.Kind, c.Name)] = c; // problems too: a list carries them
            }
            // As etcd lists them: by key, in pages of any size.
            var listed = state.Values.OrderBy(c => c.Kind.Segment + "/" + c.Name, StringComparer.Ordinal).ToList();
            var build = new FullBuild();
            for (var at = 0; at < listed.Count;)
            {
                var n = rnd.Next(1, 8);
                build.Add(listed.Skip(at).Take(n).ToList());
                at += n;
            }
            var streamed = build.Finish(5);
            var shuffled = RegistrySnapshot.Build(state.Values.OrderBy(_ => rnd.Next()).ToList(), 5);
            Assert.True(Describe(streamed) == Describe(shuffled),
                $"seed {seed}:\nstreamed:\n{Describe(streamed)}\nbatch:\n{Describe(shuffled)}");
        }
    }

    [Fact]
    public void A_heartbeat_or_status_after_the_records_rebuilds_the_join_at_the_end()
    {
        var build = new FullBuild();
        build.Add([Put(Kinds.Workloads, Samples.Workload("w1", ip: "198.18.16.1"))]);
        build.Add([Put(Kinds.WorkloadStatus, Samples.Status("w1", ip: "198.18.16.1"), 7)]);
        build.Add([Put(Kinds.NodeStatus, Samples.NodeStatus("n1"))]);
        var snapshot = build.Finish(3);
        Assert.True(snapshot.IsLive("w1")); // joined with its status and its node's heartbeat, though both came after it
        Assert.Equal(1, snapshot.LiveCount);
    }

    private static RegistryChange RandomChange(Random rnd)
    {
        string[] nodes = ["n1", "n2", "n3"];
        var id = "w" + rnd.Next(8);
        var node = nodes[rnd.Next(nodes.Length)];
        var ip = "198.18.16." + rnd.Next(1, 6);
        return rnd.Next(9) switch
        {
            0 => Put(Kinds.NodeStatus, Samples.NodeStatus(node)),
            1 => RegistryChange.Delete(Kinds.NodeStatus, node),
            2 or 3 => Put(Kinds.Workloads, Samples.Workload(id, app: rnd.Next(2) == 0 ? "shop" : "blog", node: node,
                tags: rnd.Next(3) switch { 0 => ["v1"], 1 => ["v2", "canary"], _ => [] }, ip: rnd.Next(2) == 0 ? ip : null,
                labels: [("team", rnd.Next(2) == 0 ? "a" : "b")])),
            4 => RegistryChange.Delete(Kinds.Workloads, id),
            5 or 6 => Put(Kinds.WorkloadStatus, Samples.Status(id, node, running: rnd.Next(5) > 0, healthy: rnd.Next(4) > 0,
                ip: rnd.Next(2) == 0 ? ip : null, ip6: rnd.Next(2) == 0 ? "fd00:e0::" + rnd.Next(1, 6) : null),
                lease: rnd.Next(6) == 0 ? 0 : 42),
            7 => RegistryChange.Delete(Kinds.WorkloadStatus, id),
            _ => Put(Kinds.Nodes, Samples.Node(node)),
        };
    }

    private static string Describe(RegistrySnapshot s)
    {
        static string Group<TKey>(IEnumerable<KeyValuePair<TKey, PersistentSortedSet<WorkloadView, WorkloadView.KeyById>>> d) =>
            string.Join(" ", d.Select(kv => $"{kv.Key}=[{string.Join(",", kv.Value.Select(v => v.Id))}]").Order(StringComparer.Ordinal));
        return string.Join("\n",
            "nodes " + string.Join(",", s.Nodes.Keys.Order(StringComparer.Ordinal)),
            "alive " + string.Join(",", s.NodeStatuses.Keys.Order(StringComparer.Ordinal)),
            "workloads " + string.Join(" ", s.Workloads.OrderBy(v => v.Id, StringComparer.Ordinal)
                .Select(v => $"{v.Id}:{v.Record?.App}/{v.Record?.Node}/{v.Status?.Healthy}/{v.StatusLease}/{v.IsLive}")),
            "service " + Group(s.LiveByService),
            "tag " + Group(s.LiveByTag),
            "label " + Group(s.LiveByLabel),
            "node " + Group(s.LiveByNode),
            "ip " + string.Join(" ", s.LiveByIp.Select(a => $"{a.Address}=[{string.Join(",", a.Views.Select(v => v.Id))}]")),
            "ids " + string.Join(" ", s.IdsByNode.Select(kv => $"{kv.Key}=[{string.Join(",", kv.Value)}]").Order(StringComparer.Ordinal)),
            "live " + s.LiveCount);
    }

    [Fact]
    public void A_follower_takes_any_other_snapshot_not_older_than_the_one_it_serves()
    {
        var served = RegistrySnapshot.Build([RegistryChange.Put(Kinds.Pods, Samples.Pod("a"))], 10);
        var sameRevision = served.Apply([RegistryChange.Delete(Kinds.Pods, "a")], 10); // a held deletion taking effect
        Assert.False(served.Supersedes(served));
        Assert.True(sameRevision.Supersedes(served));
        Assert.True(served.Apply([], 11).Supersedes(served));
        Assert.False(served.Supersedes(sameRevision.Apply([], 11)));
    }

    [Fact]
    public void A_snapshot_names_the_services_whose_live_group_changed_since_its_parent()
    {
        var one = LiveOne();
        var other = Samples.Workload("w2", entrypoint: "worker", ip: "198.18.16.2");
        var two = one.Apply([Put(Kinds.Workloads, other), Put(Kinds.WorkloadStatus, Samples.Status("w2", ip: "198.18.16.2"), 7)], 4);
        Assert.Equal([new ServiceKey("shop", "worker")], two.ChangedServices!);
        Assert.Same(two.ChangedServices, two.ChangedServicesSince(one));
        Assert.Empty(two.ChangedServicesSince(two)!);

        // A workload that stops being live names its service.
        var three = two.Apply([Put(Kinds.WorkloadStatus, Samples.Status("w1", healthy: false, ip: "198.18.16.1"), 7)], 5);
        Assert.Equal([new ServiceKey("shop", "web")], three.ChangedServices!);
        Assert.Null(three.ChangedServicesSince(one)); // two steps: not known from the snapshot alone

        // Nothing live changed: an empty set, not null. A full build knows no parent.
        Assert.Empty(three.Apply([Put(Kinds.Pods, new Pod { Name = "p2" })], 6).ChangedServices!);
        var full = RegistrySnapshot.Build([Put(Kinds.Workloads, other)], 9);
        Assert.Null(full.ChangedServices);
        Assert.Null(full.ChangedServicesSince(three));
    }
}
