using EdgeEru.Dns.Tables;
using EdgeEru.Registry;
using EdgeEru.Registry.Snapshot;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Dns.Tests;

/// <summary>
/// A table built from the last one and the services the registry says changed must answer exactly as one built afresh,
/// whatever the changes and however many snapshots a build skips; and the layered map under it must act as a dictionary.
/// </summary>
public class IncrementalTableTests
{
    private readonly DnsOptions _options = new() { ReverseSubnets = ["198.18.0.0/15"] };

    [Fact]
    public void Incremental_builds_answer_as_a_fresh_build_over_random_changes_and_skipped_snapshots()
    {
        var rnd = new Random(7);
        var snapshot = RegistrySnapshot.Empty.Apply(
            [.. Enumerable.Range(0, 4).SelectMany(n => new[]
            {
                RegistryChange.Put(Kinds.Nodes, Samples.Node($"n{n}")), RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus($"n{n}")),
            })], 1);
        var table = DnsTableBuilder.Build(_options, snapshot, null);
        var skipped = new HashSet<ServiceKey>();
        var incremental = 0;
        for (var step = 0; step < 400; step++)
        {
            var batch = Enumerable.Range(0, rnd.Next(1, 4)).Select(_ => RandomChange(rnd)).ToList();
            var next = snapshot.Apply(batch, snapshot.Revision + 1);
            skipped.UnionWith(next.ChangedServices!);
            snapshot = next;
            if (rnd.Next(3) == 0) continue; // a burst the holder coalesces: the next build gets the union
            var fresh = DnsTableBuilder.Build(_options, snapshot, null);
            table = DnsTableBuilder.Build(_options, snapshot, table, changedServices: skipped);
            skipped.Clear();
            incremental++;
            AssertSameAnswers(fresh, table, step);
        }
        Assert.True(incremental > 200);
    }

    private static RegistryChange RandomChange(Random rnd)
    {
        var i = rnd.Next(40);
        var id = $"w{i:D3}";
        var node = $"n{rnd.Next(4)}";
        var ip = $"198.18.{i / 200}.{i % 200 + 1}";
        return rnd.Next(8) switch
        {
            0 or 1 => RegistryChange.Put(Kinds.Workloads, Samples.Workload(id, app: $"app{i % 3}", entrypoint: i % 2 == 0 ? "web" : "db",
                node: node, tags: rnd.Next(2) == 0 ? ["v1"] : ["v2", "canary"], ip: ip)),
            2 or 3 or 4 => RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id, node, healthy: rnd.Next(4) != 0, ip: ip), lease: 1),
            5 => RegistryChange.Delete(Kinds.Workloads, id),
            6 => RegistryChange.Delete(Kinds.WorkloadStatus, id),
            _ => rnd.Next(2) == 0
                ? RegistryChange.Delete(Kinds.NodeStatus, node)
                : RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus(node)),
        };
    }

    private static void AssertSameAnswers(DnsTable fresh, DnsTable built, int step)
    {
        var a = fresh.Zones[0];
        var b = built.Zones[0];
        Assert.Equal(a.Services.Select(s => s.Key).Order(), b.Services.Select(s => s.Key).Order());
        Assert.Equal(a.Services.Count, b.Services.Count);
        Assert.Equal(a.Apps.Select(kv => $"{kv.Key}={kv.Value}").Order(), b.Apps.Select(kv => $"{kv.Key}={kv.Value}").Order());
        foreach (var (key, s) in a.Services)
        {
            var t = b.Services[key];
            Assert.True(Bytes(s.A) == Bytes(t.A), $"step {step}: A of {key}");
            Assert.True(Bytes(s.Txt) == Bytes(t.Txt), $"step {step}: TXT of {key}");
            Assert.Equal(s.Below.Keys.Order(), t.Below.Keys.Order());
            foreach (var (label, subset) in s.Below) Assert.True(Bytes(subset.A) == Bytes(t.Below[label].A), $"step {step}: {label}.{key}");
            Assert.Equal(s.Instances.OrderBy(i => i.Key), t.Instances.OrderBy(i => i.Key));
            Assert.Equal(s.Srv.Keys.Order(), t.Srv.Keys.Order());
            foreach (var (name, srv) in s.Srv) Assert.True(Bytes(srv) == Bytes(t.Srv[name]), $"step {step}: {name}.{key}");
        }
        Assert.Equal(a.Nodes.Keys.Order(), b.Nodes.Keys.Order());
        foreach (var (name, n) in a.Nodes) Assert.True(Bytes(n.Txt) == Bytes(b.Nodes[name].Txt), $"step {step}: node {name}");
    }

    private static string Bytes(RRset? set) =>
        set is null
            ? "-"
            : string.Join("|", set.Records.Select(Convert.ToHexString)) + "/"
                + string.Join("|", set.Additional.Select(Convert.ToHexString));

    [Fact]
    public void A_layered_map_sets_removes_counts_and_folds_as_a_dictionary_would()
    {
        var rnd = new Random(3);
        var expected = new Dictionary<string, int>();
        var map = LayeredMap<int>.Empty;
        var sawOverlay = false;
        for (var step = 0; step < 3000; step++)
        {
            var edits = Enumerable.Range(0, rnd.Next(1, 5))
                .Select(_ => ($"k{rnd.Next(300)}", rnd.Next(3) != 0, step))
                .DistinctBy(e => e.Item1).ToList();
            foreach (var (key, present, value) in edits)
                if (present) expected[key] = value;
                else expected.Remove(key);
            map = map.With(edits);
            sawOverlay |= map.OverlayCount > 0;
            Assert.Equal(expected.Count, map.Count);
            foreach (var (key, _, _) in edits)
            {
                Assert.Equal(expected.ContainsKey(key), map.ContainsKey(key));
                if (expected.TryGetValue(key, out var v)) Assert.Equal(v, map[key]);
            }
        }
        Assert.True(sawOverlay);
        Assert.Equal(expected.OrderBy(kv => kv.Key), map.OrderBy(kv => kv.Key));
        Assert.Same(map, map.With([]));
    }
}
