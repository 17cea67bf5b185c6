using EdgeEru.Core.Scheduling;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>Placement as pure logic: capacities, CPU plans, strategies; properties over random clusters.</summary>
public class SchedulerTests
{
    private const long GiB = 1L << 30;

    private static NodeResources Node(
        string name, int cores = 4, long memory = 8 * GiB, int pieces = 100, int existing = 0, string[]? numa = null) => new()
    {
        Name = name,
        PiecesPerCore = pieces,
        FreePieces = Enumerable.Repeat(pieces, cores).ToArray(),
        CoreNuma = numa ?? [],
        FreeMemory = memory,
        TotalMemory = memory,
        Existing = existing,
    };

    [Fact]
    public void Capacity_is_memory_first()
    {
        var r = new ResourceRequest { Memory = GiB, Cpu = 0.5 };
        Assert.Equal(8, Scheduler.Capacity(Node("a"), r));
        Assert.Equal(0, Scheduler.Capacity(Node("a"), r with { Cpu = 5 })); // more CPU than cores
        Assert.Equal(Scheduler.MaxPerNode, Scheduler.Capacity(Node("a"), new ResourceRequest { Cpu = 1 }));
    }

    [Theory]
    [InlineData(new[] { 100, 100, 100, 100 }, 1.0, 4)]
    [InlineData(new[] { 100, 100, 100, 100 }, 1.5, 2)]   // 1 full + half of another, twice; the split search finds 2
    [InlineData(new[] { 100, 100, 100, 100 }, 0.5, 8)]
    [InlineData(new[] { 100, 100, 100, 100 }, 2.0, 2)]
    [InlineData(new[] { 100, 100, 100, 100 }, 3.5, 1)]
    [InlineData(new[] { 200, 200 }, 1.0, 4)]             // oversell: each core twice
    [InlineData(new[] { 400 }, 2.0, 0)]                  // two full cores must be two distinct cores
    [InlineData(new[] { 30, 30, 100 }, 0.3, 5)]          // remainders first, then a whole core cut up
    [InlineData(new[] { 100, 100, 100 }, 1.3, 2)]
    public void CPU_plans_count_full_and_fragment_cores(int[] free, double cpu, int expected) =>
        Assert.Equal(expected, CpuPlanner.Capacity(free, [], new ResourceRequest { Cpu = cpu, CpuBind = true }));

    [Fact]
    public void A_plan_prefers_one_NUMA_node_and_keeps_whole_cores_whole()
    {
        var plan = CpuPlanner.Plan([100, 100, 100, 40], ["0", "0", "1", "1"], new ResourceRequest { Cpu = 1.3, CpuBind = true })!;
        Assert.Equal("1", plan.Numa); // core 2 full + 30 of core 3's remainder, both on NUMA 1
        Assert.Equal([(2, 100), (3, 30)], plan.Cores);
        var cross = CpuPlanner.Plan([100, 0, 100, 0], ["0", "0", "1", "1"], new ResourceRequest { Cpu = 2, CpuBind = true })!;
        Assert.Null(cross.Numa); // no NUMA node has two full cores: across nodes
        Assert.Equal([0, 2], cross.Cores.Select(c => c.Core).Order());
        Assert.Null(CpuPlanner.Plan([100, 20], [], new ResourceRequest { Cpu = 1.5, CpuBind = true }));
    }

    [Fact]
    public void Auto_spreads_evenly_counting_what_is_there()
    {
        var nodes = new[] { Node("a", existing: 2), Node("b"), Node("c") };
        var r = Scheduler.Place(nodes, new PlacementRequest(new ResourceRequest { Memory = GiB }, 7, Strategy.Auto));
        Assert.True(r.Ok, r.Error);
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["b"] = 3, ["c"] = 3 }, r.PerNode);
    }

    [Fact]
    public void Fill_each_global_and_drained()
    {
        var req = new ResourceRequest { Memory = GiB, Cpu = 1 };
        var fill = Scheduler.Place([Node("a", existing: 1), Node("b")], new PlacementRequest(req, 3, Strategy.Fill));
        Assert.Equal(new Dictionary<string, int> { ["a"] = 2, ["b"] = 3 }, fill.PerNode);
        var each = Scheduler.Place([Node("a"), Node("b")], new PlacementRequest(req, 2, Strategy.Each));
        Assert.Equal(4, each.Total);
        var busy = Node("busy") with { FreeMemory = 2 * GiB };
        var global = Scheduler.Place([busy, Node("idle")], new PlacementRequest(req, 2, Strategy.Global));
        Assert.Equal(new Dictionary<string, int> { ["idle"] = 2 }, global.PerNode);
        var drained = Scheduler.Place([busy, Node("idle")], new PlacementRequest(req, 3, Strategy.Drained));
        Assert.Equal(new Dictionary<string, int> { ["busy"] = 2, ["idle"] = 1 }, drained.PerNode);
    }

    [Fact]
    public void Not_enough_room_names_each_node_and_why()
    {
        var r = Scheduler.Place([Node("a", memory: GiB / 2), Node("b", cores: 1)],
            new PlacementRequest(new ResourceRequest { Memory = GiB, Cpu = 2 }, 1, Strategy.Auto));
        Assert.False(r.Ok);
        Assert.Equal("room for 0 of 1 instances", r.Error);
        Assert.Equal($"free memory {GiB / 2} < request {GiB}", r.NodeReasons["a"]);
        Assert.Equal("cpu 2 > 1 cores", r.NodeReasons["b"]);
        var bad = Scheduler.Place([Node("a")], new PlacementRequest(new ResourceRequest { Memory = -1 }, 0, Strategy.Auto));
        Assert.Contains("memory must not be negative", bad.Error, StringComparison.Ordinal);
        Assert.Contains("count 0 must be positive", bad.Error, StringComparison.Ordinal);
    }

    /// <summary>
    /// Properties over random clusters and requests: a placement puts exactly Count instances, never more
    /// on a node than its capacity, and every placed bound instance really gets a CPU plan, with no core
    /// ever overcommitted. Auto keeps nodes with room within one instance of each other.
    /// </summary>
    [Fact]
    public void Placements_never_overcommit_and_every_bound_instance_gets_its_cores()
    {
        for (var seed = 0; seed < 400; seed++)
        {
            var rnd = new Random(seed);
            var nodes = Enumerable.Range(0, rnd.Next(1, 6)).Select(i =>
            {
                var pieces = rnd.Next(2) == 0 ? 100 : 200;
                var cores = rnd.Next(1, 9);
                return Node($"n{i}", cores, rnd.Next(1, 17) * GiB, pieces, rnd.Next(0, 3)) with
                {
                    FreePieces = Enumerable.Range(0, cores).Select(_ => rnd.Next(0, pieces / 10 + 1) * 10).ToArray(),
                    CoreNuma = Enumerable.Range(0, cores).Select(c => (c * 2 / cores).ToString()).ToArray(),
                };
            }).ToList();
            var req = new ResourceRequest { Memory = rnd.Next(0, 4) * GiB / 2, Cpu = rnd.Next(1, 30) / 10.0, CpuBind = rnd.Next(2) == 0 };
            var strategy = (Strategy)rnd.Next(5);
            var count = rnd.Next(1, 12);
            var result = Scheduler.Place(nodes, new PlacementRequest(req, count, strategy, PerNodeLimit: rnd.Next(3) == 0 ? 4 : 0));
            if (!result.Ok) continue;
            var expected = strategy switch
            {
                Strategy.Each => count * nodes.Count,
                Strategy.Fill => nodes.Sum(n => Math.Max(0, count - n.Existing)),
                _ => count,
            };
            Assert.True(expected == result.Total, $"seed {seed}: {strategy} placed {result.Total}, expected {expected}");
            foreach (var (name, placed) in result.PerNode)
            {
                var node = nodes.Single(n => n.Name == name);
                Assert.True(placed <= Scheduler.Capacity(node, req), $"seed {seed}: {name} over capacity");
                Assert.True(placed * req.Memory <= node.FreeMemory, $"seed {seed}: {name} memory overcommitted");
                if (!req.CpuBind) continue;
                var free = (int[])node.FreePieces.Clone();
                for (var i = 0; i < placed; i++)
                {
                    var plan = CpuPlanner.Plan(free, node.CoreNuma, req);
                    Assert.True(plan is not null, $"seed {seed}: {name} promised {placed} bound instances, " +
                        $"plan {i + 1} found no cores (free [{string.Join(",", free)}], cpu {req.Cpu})");
                    Assert.Equal(plan.Cores.Count, plan.Cores.Select(c => c.Core).Distinct().Count());
                    foreach (var (core, pieces) in plan.Cores) free[core] -= pieces;
                    Assert.All(free, f => Assert.True(f >= 0, $"seed {seed}: core overcommitted"));
                }
            }
        }
    }
}
