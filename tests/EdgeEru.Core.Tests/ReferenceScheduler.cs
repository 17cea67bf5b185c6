using EdgeEru.Core.Scheduling;

namespace EdgeEru.Core.Tests;

// The scheduler as it was before it was made fast (commit 355547b), kept verbatim as the oracle that
// SchedulerEquivalenceTests compares the fast one against: same plans, same capacities, same placements.
#pragma warning disable CA1822, IDE0005, IDE0060

internal static class ReferenceCpuPlanner
{
    private const int Full = 100;

    /// <summary>
    /// How many instances fit. Full units can also be cut into fragments, so the best split is searched:
    /// for k full units turned into fragment room, plans = min((U−k)/X, fragmentsFromRemainders + k·(100/F)).
    /// The search walks k once: linear in the number of full units (cores × pieces per core / 100).
    /// </summary>
    /// <summary>
    /// How many instances the allocator will really bind: plans are taken one after another (the same
    /// <see cref="Plan"/> a deploy uses), up to <see cref="UpperBound"/>, so what capacity promises
    /// the allocation can always give.
    /// </summary>
    public static int Capacity(IReadOnlyList<int> freePieces, IReadOnlyList<string> coreNuma, ResourceRequest request)
    {
        var bound = UpperBound(freePieces, request);
        var free = freePieces.ToArray();
        var n = 0;
        while (n < bound && Plan(free, coreNuma, request) is { } plan)
        {
            foreach (var (core, pieces) in plan.Cores) free[core] -= pieces;
            n++;
        }
        return n;
    }

    /// <summary>ERU's estimate, in time linear in the full units: never below what fits.</summary>
    public static int UpperBound(IReadOnlyList<int> freePieces, ResourceRequest request)
    {
        int x = request.FullCores, f = request.FragmentPieces;
        if (x == 0 && f == 0) return 0;
        var units = 0;
        var remainderSlots = 0;
        foreach (var free in freePieces)
        {
            units += free / Full;
            if (f > 0) remainderSlots += free % Full / f;
        }
        int best;
        if (f == 0) best = units / x;
        else if (x == 0) best = remainderSlots + units * (Full / f);
        else
        {
            best = 0;
            var perUnit = Full / f;
            for (var k = 0; k <= units; k++)
            {
                var plans = Math.Min((units - k) / x, remainderSlots + k * perUnit);
                if (plans > best) best = plans;
                if ((units - k) / x <= best) break; // fewer full units can only lower the first bound
            }
        }
        return Math.Min(best, DistinctCoresBound(freePieces, x, f, best));
    }

    /// <summary>
    /// An instance binds x + (fragment ? 1 : 0) distinct cores, so N instances need every core to take
    /// part at most N times: the largest N with Σ min(share_c, N) ≥ N·cores-per-instance (binary search).
    /// This matters with oversell, where one core's pieces could otherwise count twice in one instance.
    /// </summary>
    private static int DistinctCoresBound(IReadOnlyList<int> freePieces, int x, int f, int upper)
    {
        var perInstance = x + (f > 0 ? 1 : 0);
        bool Fits(int n)
        {
            long sum = 0;
            foreach (var free in freePieces)
            {
                var share = free / (f > 0 ? f : Full); // how many instances this core could take part in
                sum += Math.Min(share, n);
            }
            return sum >= (long)n * perInstance;
        }
        int lo = 0, hi = upper;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (Fits(mid)) lo = mid; else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>
    /// One concrete binding, or null when none fits: within one NUMA node first (its memory stays local),
    /// else across nodes. Full cores: those with the most free pieces; the fragment: the tightest core
    /// that still fits it (a remainder before a whole core), never one of the instance's own full cores.
    /// </summary>
    public static CpuPlan? Plan(IReadOnlyList<int> freePieces, IReadOnlyList<string> coreNuma, ResourceRequest request)
    {
        if (coreNuma.Count == freePieces.Count)
        {
            // The best NUMA-local plan: one that keeps whole cores whole, then the roomiest node.
            var local = coreNuma.Select((n, i) => (n, i)).GroupBy(p => p.n)
                .Select(g => (Numa: g.Key, Cores: g.Select(p => p.i).ToArray()))
                .Select(g => (g.Numa, Free: g.Cores.Sum(c => freePieces[c]), Plan: PlanWithin(freePieces, g.Cores, request)))
                .Where(c => c.Plan is not null)
                .OrderBy(c => CutsWholeCore(freePieces, c.Plan!, request) ? 1 : 0).ThenByDescending(c => c.Free)
                .ThenBy(c => c.Numa, StringComparer.Ordinal)
                .FirstOrDefault();
            if (local.Plan is not null) return local.Plan with { Numa = local.Numa };
        }
        return PlanWithin(freePieces, Enumerable.Range(0, freePieces.Count).ToArray(), request);
    }

    private static bool CutsWholeCore(IReadOnlyList<int> freePieces, CpuPlan plan, ResourceRequest request) =>
        request.FragmentPieces > 0 && freePieces[plan.Cores[^1].Core] % Full < request.FragmentPieces;

    private static CpuPlan? PlanWithin(IReadOnlyList<int> freePieces, int[] cores, ResourceRequest request)
    {
        int x = request.FullCores, f = request.FragmentPieces;
        var full = cores.Where(c => freePieces[c] >= Full)
            .OrderByDescending(c => freePieces[c]).ThenBy(c => c).Take(x).ToList();
        if (full.Count < x) return null;
        var plan = full.Select(c => (c, Full)).ToList();
        if (f > 0)
        {
            var fragment = cores.Where(c => !full.Contains(c) && freePieces[c] >= f)
                .OrderBy(c => freePieces[c] % Full >= f ? 0 : 1) // a remainder first: keep whole cores whole
                .ThenBy(c => freePieces[c]).ThenBy(c => c).Cast<int?>().FirstOrDefault();
            if (fragment is null) return null;
            plan.Add((fragment.Value, f));
        }
        return new CpuPlan(plan, null);
    }
}

internal static class ReferenceScheduler
{
    /// <summary>A ceiling for requests that ask for no memory, so that capacity stays finite.</summary>
    public const int MaxPerNode = 10_000;

    /// <summary>
    /// Memory first: free memory / memory request; with CPU bind also the number of CPU plans; without
    /// bind zero if the request exceeds the node's cores (CPU is then a CFS quota at run time).
    /// </summary>
    public static int Capacity(NodeResources node, ResourceRequest r)
    {
        var memory = r.Memory > 0 ? (int)Math.Min(node.FreeMemory / r.Memory, MaxPerNode) : MaxPerNode;
        if (!r.CpuBind) return r.Cpu > node.CpuCores ? 0 : memory;
        return Math.Min(memory, ReferenceCpuPlanner.Capacity(node.FreePieces, node.CoreNuma, r));
    }

    public static PlacementResult Place(IReadOnlyList<NodeResources> nodes, PlacementRequest request)
    {
        var problems = request.Resources.Problems().ToList();
        if (request.Count <= 0) problems.Add($"count {request.Count} must be positive");
        if (request.PerNodeLimit < 0) problems.Add("per-node limit must not be negative");
        if (problems.Count > 0) return Fail(string.Join("; ", problems), new Dictionary<string, string>());

        var ordered = nodes.OrderBy(n => n.Name, StringComparer.Ordinal).ToList();
        var capacity = ordered.ToDictionary(n => n.Name, n => Limit(n, Capacity(n, request.Resources), request.PerNodeLimit));
        var reasons = ordered.Where(n => capacity[n.Name] == 0).ToDictionary(n => n.Name, n => Reason(n, request));
        var placed = ordered.ToDictionary(n => n.Name, _ => 0);

        switch (request.Strategy)
        {
            case Strategy.Each:
            case Strategy.Fill:
                foreach (var n in ordered)
                {
                    var want = request.Strategy == Strategy.Each ? request.Count : Math.Max(0, request.Count - n.Existing);
                    if (want > capacity[n.Name])
                        return Fail($"node {n.Name} has room for {capacity[n.Name]}, needs {want}",
                            reasons.Count > 0 ? reasons : new() { [n.Name] = Reason(n, request) });
                    placed[n.Name] = want;
                }
                break;
            case Strategy.Auto:
            {
                // Min-heap on (instances of the app on the node, -room left, name).
                var heap = new PriorityQueue<NodeResources, (int Count, int Room, string Name)>(
                    Comparer<(int Count, int Room, string Name)>.Create((a, b) =>
                        a.Count != b.Count ? a.Count.CompareTo(b.Count)
                        : a.Room != b.Room ? b.Room.CompareTo(a.Room)
                        : string.CompareOrdinal(a.Name, b.Name)));
                foreach (var n in ordered.Where(n => capacity[n.Name] > 0)) heap.Enqueue(n, (n.Existing, capacity[n.Name], n.Name));
                for (var i = 0; i < request.Count; i++)
                {
                    if (!heap.TryDequeue(out var n, out _)) return Fail(Short(request, i), reasons);
                    var p = ++placed[n.Name];
                    if (p < capacity[n.Name]) heap.Enqueue(n, (n.Existing + p, capacity[n.Name] - p, n.Name));
                }
                break;
            }
            case Strategy.Global:
            {
                // One at a time where relative usage (memory and CPU, both weighed) after placing is lowest.
                for (var i = 0; i < request.Count; i++)
                {
                    NodeResources? best = null;
                    var bestUsage = double.MaxValue;
                    foreach (var n in ordered)
                    {
                        if (placed[n.Name] >= capacity[n.Name]) continue;
                        var usage = UsageAfter(n, request.Resources, placed[n.Name] + 1);
                        if (usage < bestUsage) (best, bestUsage) = (n, usage);
                    }
                    if (best is null) return Fail(Short(request, i), reasons);
                    placed[best.Name]++;
                }
                break;
            }
            case Strategy.Drained:
            {
                var left = request.Count;
                foreach (var n in ordered.OrderByDescending(n => UsageAfter(n, request.Resources, 0))
                    .ThenBy(n => n.Name, StringComparer.Ordinal))
                {
                    var take = Math.Min(left, capacity[n.Name]);
                    placed[n.Name] = take;
                    left -= take;
                    if (left == 0) break;
                }
                if (left > 0) return Fail(Short(request, request.Count - left), reasons);
                break;
            }
        }
        return new PlacementResult(placed.Where(p => p.Value > 0).ToDictionary(), null, reasons);
    }

    /// <summary>Relative usage of a node after <paramref name="more"/> instances: memory and CPU fractions, averaged.</summary>
    private static double UsageAfter(NodeResources n, ResourceRequest r, int more)
    {
        var memory = n.TotalMemory > 0 ? (n.TotalMemory - n.FreeMemory + (double)r.Memory * more) / n.TotalMemory : 0;
        var totalPieces = (double)n.PiecesPerCore * n.CpuCores;
        var cpu = totalPieces > 0 ? (totalPieces - n.FreePieces.Sum() + r.Cpu * 100 * more) / totalPieces : 0;
        return (memory + cpu) / 2;
    }

    private static int Limit(NodeResources n, int capacity, int perNodeLimit) =>
        perNodeLimit > 0 ? Math.Max(0, Math.Min(capacity, perNodeLimit - n.Existing)) : capacity;

    /// <summary>Why nothing of <paramref name="request"/> fits on <paramref name="n"/>.</summary>
    public static string Reason(NodeResources n, PlacementRequest request)
    {
        var r = request.Resources;
        if (r.Memory > n.FreeMemory) return $"free memory {n.FreeMemory} < request {r.Memory}";
        if (!r.CpuBind && r.Cpu > n.CpuCores) return $"cpu {r.Cpu} > {n.CpuCores} cores";
        if (r.CpuBind) return $"no core plan for {r.Cpu} bound cpus";
        return request.PerNodeLimit > 0 ? $"already {n.Existing} of at most {request.PerNodeLimit}" : "no room";
    }

    private static string Short(PlacementRequest r, int placed) => $"room for {placed} of {r.Count} instances";

    private static PlacementResult Fail(string error, Dictionary<string, string> reasons) =>
        new(new Dictionary<string, int>(), error, reasons);
}
