namespace EdgeEru.Core.Scheduling;

/// <summary>
/// CPU binding with full and fragment cores, as ERU planned it. A request of X.Y CPUs needs X full cores
/// (100 pieces each, on distinct cores) and one fragment of Y×100 pieces on another core. A core with
/// free pieces f offers floor(f/100) full units and its remainder as fragment room; oversell (more than
/// 100 pieces per core) lets a core serve several instances.
/// </summary>
public static class CpuPlanner
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
                .OrderBy(c => CutsWholeCore(freePieces, c.Plan!, request) ? 1 : 0).ThenByDescending(c => c.Free).ThenBy(c => c.Numa, StringComparer.Ordinal)
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
