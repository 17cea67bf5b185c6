using EdgeEru.Core.Scheduling;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>
/// The fast scheduler decides exactly what the straightforward one (<see cref="ReferenceScheduler"/>) did:
/// the same CPU plans (cores, order, NUMA node), the same capacities, the same placements, errors and
/// reasons, over random clusters with NUMA, oversell and partly used cores.
/// </summary>
public class SchedulerEquivalenceTests
{
    private const long GiB = 1L << 30;

    private static NodeResources RandomNode(Random rnd, int i)
    {
        var pieces = rnd.Next(3) == 0 ? 200 : 100;
        var cores = rnd.Next(4) == 0 ? rnd.Next(1, 65) : rnd.Next(1, 17);
        var numa = rnd.Next(4) switch { 0 => 0, 1 => 1, 2 => 2, _ => rnd.Next(3, 12) };
        var free = Enumerable.Range(0, cores).Select(_ => rnd.Next(3) switch
        {
            0 => pieces,
            1 => rnd.Next(0, pieces / 25 + 1) * 25,
            _ => rnd.Next(0, pieces + 1),
        }).ToArray();
        var memory = rnd.Next(1, 65) * GiB;
        return new NodeResources
        {
            Name = $"n{rnd.Next(1000)}-{i}",
            PiecesPerCore = pieces,
            FreePieces = free,
            // Names like "10" and "9" check the ordinal tie-break.
            CoreNuma = numa == 0
                ? []
                : Enumerable.Range(0, cores)
                    .Select(c => (c * numa / cores + (numa > 9 ? 5 : 0)).ToString(System.Globalization.CultureInfo.InvariantCulture))
                    .ToArray(),
            FreeMemory = rnd.Next(0, 5) == 0 ? memory : rnd.NextInt64(0, memory + 1),
            TotalMemory = memory,
            Existing = rnd.Next(3) == 0 ? rnd.Next(0, 6) : 0,
        };
    }

    private static ResourceRequest RandomRequest(Random rnd) => new()
    {
        Memory = rnd.Next(4) == 0 ? 0 : rnd.Next(1, 9) * GiB / 4,
        Cpu = rnd.Next(3) == 0 ? rnd.Next(1, 9) * 0.25 : rnd.Next(1, 401) / 100.0,
        CpuBind = rnd.Next(3) != 0,
    };

    private static string Show(CpuPlan? p) =>
        p is null ? "none" : $"{p.Numa ?? "-"}:{string.Join(",", p.Cores.Select(c => $"{c.Core}/{c.Pieces}"))}";

    [Fact]
    public void CPU_plans_and_capacities_match_the_reference_plan_after_plan()
    {
        for (var seed = 0; seed < 1500; seed++)
        {
            var rnd = new Random(seed);
            var node = RandomNode(rnd, 0);
            var req = RandomRequest(rnd) with { CpuBind = true };
            if (req.Problems().Any()) continue;
            Assert.True(ReferenceCpuPlanner.Capacity(node.FreePieces, node.CoreNuma, req)
                    == CpuPlanner.Capacity(node.FreePieces, node.CoreNuma, req),
                $"seed {seed}: capacity of [{string.Join(",", node.FreePieces)}] numa [{string.Join(",", node.CoreNuma)}] for {req.Cpu}");
            var free = (int[])node.FreePieces.Clone();
            for (var step = 0; step < 200; step++)
            {
                var expected = ReferenceCpuPlanner.Plan(free, node.CoreNuma, req);
                var actual = CpuPlanner.Plan(free, node.CoreNuma, req);
                Assert.True(Show(expected) == Show(actual), $"seed {seed} step {step}: free [{string.Join(",", free)}] " +
                    $"numa [{string.Join(",", node.CoreNuma)}] cpu {req.Cpu}: {Show(expected)} vs {Show(actual)}");
                if (expected is null || expected.Cores.Count == 0) break;
                foreach (var (core, pieces) in expected.Cores) free[core] -= pieces;
            }
        }
    }

    [Fact]
    public void Placements_match_the_reference_for_every_strategy()
    {
        for (var seed = 0; seed < 1500; seed++)
        {
            var rnd = new Random(seed);
            var nodes = Enumerable.Range(0, rnd.Next(1, 30)).Select(i => RandomNode(rnd, i)).ToList();
            var request = new PlacementRequest(RandomRequest(rnd), rnd.Next(1, 60), (Strategy)rnd.Next(5),
                rnd.Next(4) == 0 ? rnd.Next(1, 6) : 0);
            foreach (var n in nodes)
                Assert.Equal(ReferenceScheduler.Capacity(n, request.Resources), Scheduler.Capacity(n, request.Resources));
            var expected = ReferenceScheduler.Place(nodes, request);
            var actual = Scheduler.Place(nodes, request);
            Assert.True(expected.Error == actual.Error, $"seed {seed}: {expected.Error} vs {actual.Error}");
            Assert.Equal(expected.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal),
                actual.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal));
            Assert.Equal(expected.NodeReasons.OrderBy(p => p.Key, StringComparer.Ordinal),
                actual.NodeReasons.OrderBy(p => p.Key, StringComparer.Ordinal));
        }
    }

    [Fact]
    public void The_quick_bound_is_never_below_the_count_of_CPU_plans()
    {
        for (var seed = 0; seed < 3000; seed++)
        {
            var rnd = new Random(seed);
            var node = RandomNode(rnd, 0);
            var req = RandomRequest(rnd) with { CpuBind = true };
            if (req.Problems().Any()) continue;
            var quick = CpuPlanner.QuickBound(node.FreePieces, req);
            var plans = CpuPlanner.Capacity(node.FreePieces, node.CoreNuma, req);
            Assert.True(quick >= plans,
                $"seed {seed}: quick bound {quick} < {plans} plans of [{string.Join(",", node.FreePieces)}] for {req.Cpu}");
        }
    }

    [Fact]
    public void Node_capacities_are_the_scheduler_capacity_and_their_bound_never_below_it()
    {
        for (var seed = 0; seed < 500; seed++)
        {
            var rnd = new Random(seed);
            var nodes = Enumerable.Range(0, rnd.Next(1, 30)).Select(i => RandomNode(rnd, i)).ToArray();
            var request = new PlacementRequest(RandomRequest(rnd), rnd.Next(1, 60), (Strategy)rnd.Next(5),
                rnd.Next(4) == 0 ? rnd.Next(1, 6) : 0);
            if (request.Resources.Problems().Any()) continue;
            var upTo = rnd.Next(2) == 0 ? Scheduler.MaxPerNode : request.Count;
            var capacities = new Scheduler.NodeCapacities(nodes, request, upTo);
            for (var i = 0; i < nodes.Length; i++)
            {
                var room = Math.Min(Scheduler.Capacity(nodes[i], request.Resources), upTo);
                if (request.PerNodeLimit > 0) room = Math.Max(0, Math.Min(room, request.PerNodeLimit - nodes[i].Existing));
                var bound = capacities.Bound(i);
                Assert.True(bound >= room, $"seed {seed} node {i}: bound {bound} < room {room}");
                Assert.Equal(room, capacities.Exact(i));
                Assert.True(capacities.IsExact(i));
            }
        }
    }

    /// <summary>
    /// AUTO ranks nodes by a bound on their room and counts CPU plans only for those that come first, and without
    /// binding starts from the count smallest keys only: over a large cluster of alike, partly used nodes (many
    /// ties, most never reached) it still places as the reference does.
    /// </summary>
    [Fact]
    public void Auto_over_many_alike_nodes_places_as_the_reference()
    {
        for (var seed = 0; seed < 60; seed++)
        {
            var rnd = new Random(seed);
            var nodes = Enumerable.Range(0, 300).Select(i => new NodeResources
            {
                Name = $"node-{i:D3}",
                FreePieces = Enumerable.Range(0, 16).Select(_ => rnd.Next(4) == 0 ? rnd.Next(0, 5) * 25 : 100).ToArray(),
                CoreNuma = Enumerable.Range(0, 16).Select(c => c < 8 ? "0" : "1").ToArray(),
                FreeMemory = rnd.Next(1, 5) * 8 * GiB,
                TotalMemory = 32 * GiB,
                Existing = rnd.Next(3) == 0 ? 1 : 0,
            }).ToList();
            var req = new ResourceRequest { Memory = GiB / 2, Cpu = rnd.Next(1, 9) * 0.25, CpuBind = rnd.Next(3) != 0 };
            var request = new PlacementRequest(req, rnd.Next(1, 800), Strategy.Auto, rnd.Next(4) == 0 ? 2 : 0);
            var expected = ReferenceScheduler.Place(nodes, request);
            var actual = Scheduler.Place(nodes, request);
            Assert.True(expected.Error == actual.Error, $"seed {seed}: {expected.Error} vs {actual.Error}");
            Assert.Equal(expected.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal),
                actual.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal));
            Assert.Equal(expected.NodeReasons.OrderBy(p => p.Key, StringComparer.Ordinal),
                actual.NodeReasons.OrderBy(p => p.Key, StringComparer.Ordinal));
        }
    }
}
