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
    /// How many instances the allocator will really bind: plans are taken one after another (the same
    /// <see cref="Plan"/> a deploy uses), up to <see cref="UpperBound"/> and <paramref name="limit"/> (what
    /// memory or the deploy's count allows), so what capacity promises the allocation can always give. Fragment-only requests are
    /// counted without simulating, as are requests of exactly one core: each plan then takes the same pieces
    /// of one core, and one exists while any core has them, so the plans are Σ⌊free/need⌋ in any order.
    /// </summary>
    public static int Capacity(
        IReadOnlyList<int> freePieces, IReadOnlyList<string> coreNuma, ResourceRequest request, int limit = int.MaxValue)
    {
        var bound = Math.Min(UpperBound(freePieces, request), limit);
        if (bound <= 0) return 0;
        int x = request.FullCores, f = request.FragmentPieces;
        if (x == 0 || (x == 1 && f == 0))
        {
            var need = x == 0 ? f : Full;
            long fits = 0;
            foreach (var free in freePieces)
                if (free >= need) fits += free / need;
            return (int)Math.Min(bound, fits);
        }
        var pieces = freePieces.ToArray();
        var planner = new Planner(coreNuma, pieces.Length, x);
        var n = 0;
        while (n < bound && planner.Find(pieces, x, f) is var found && found != NoPlan)
        {
            for (var i = 0; i < x; i++) pieces[planner.Chosen[i]] -= Full;
            if (f > 0) pieces[planner.Fragment] -= f;
            n++;
        }
        return n;
    }

    /// <summary>
    /// Never below <see cref="Capacity"/>, in one pass over the cores and without the split search: every plan
    /// takes X full units (⌊free/100⌋ of a core) and X×100+Y pieces in all. The scheduler ranks nodes by it and
    /// counts plans exactly only for the nodes that come first.
    /// </summary>
    internal static int QuickBound(ReadOnlySpan<int> freePieces, ResourceRequest request)
    {
        int x = request.FullCores, f = request.FragmentPieces;
        if (x == 0 && f == 0) return 0;
        long units = 0, total = 0, fragments = 0;
        var need = x == 0 ? f : Full;
        foreach (var free in freePieces)
        {
            total += free;
            units += free / Full;
            if (x == 0 || (x == 1 && f == 0)) fragments += free / need;
        }
        // Fragment-only and one-core requests are counted in closed form by Capacity: Σ⌊free/need⌋.
        if (x == 0 || (x == 1 && f == 0)) return (int)Math.Min(int.MaxValue, fragments);
        return (int)Math.Min(Math.Min(units / x, total / (x * Full + f)), int.MaxValue);
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
        int x = request.FullCores, f = request.FragmentPieces;
        var planner = new Planner(coreNuma, freePieces.Count, x);
        var found = planner.Find([.. freePieces], x, f);
        if (found == NoPlan) return null;
        var cores = new List<(int Core, int Pieces)>(x + 1);
        for (var i = 0; i < x; i++) cores.Add((planner.Chosen[i], Full));
        if (f > 0) cores.Add((planner.Fragment, f));
        return new CpuPlan(cores, found == AcrossNodes ? null : planner.GroupNames[found]);
    }

    private const int NoPlan = -2, AcrossNodes = -1;

    /// <summary>
    /// Finds plans without allocating: the cores of each NUMA node are grouped once, and each search is a
    /// linear scan keeping the X best full cores in a small sorted array.
    /// </summary>
    private sealed class Planner
    {
        private readonly int[][] _groups;
        private readonly int[] _all;
        private readonly int[] _bestFull;

        public Planner(IReadOnlyList<string> coreNuma, int cores, int fullCores)
        {
            _all = new int[cores];
            for (var c = 0; c < cores; c++) _all[c] = c;
            if (coreNuma.Count == cores && cores > 0)
            {
                // Groups in ordinal name order. A node has a few NUMA nodes: a linear search of the names seen
                // beats a sorted map (a planner is built for every plan the allocator makes).
                var names = new List<string>(4);
                var groupOf = new int[cores];
                for (var c = 0; c < cores; c++)
                {
                    var name = coreNuma[c];
                    var g = c > 0 && string.Equals(name, coreNuma[c - 1], StringComparison.Ordinal)
                        ? groupOf[c - 1]
                        : names.IndexOf(name);
                    if (g < 0)
                    {
                        g = names.Count;
                        names.Add(name);
                    }
                    groupOf[c] = g;
                }
                var rank = new int[names.Count];
                var byName = new int[names.Count];
                for (var g = 0; g < byName.Length; g++) byName[g] = g;
                Array.Sort(byName, (a, b) => string.CompareOrdinal(names[a], names[b]));
                for (var r = 0; r < byName.Length; r++) rank[byName[r]] = r;
                var sizes = new int[names.Count];
                foreach (var g in groupOf) sizes[rank[g]]++;
                _groups = new int[names.Count][];
                for (var r = 0; r < _groups.Length; r++) _groups[r] = new int[sizes[r]];
                Array.Clear(sizes);
                for (var c = 0; c < cores; c++)
                {
                    var r = rank[groupOf[c]];
                    _groups[r][sizes[r]++] = c;
                }
                GroupNames = new string[names.Count];
                for (var r = 0; r < byName.Length; r++) GroupNames[r] = names[byName[r]];
            }
            else
            {
                GroupNames = [];
                _groups = [];
            }
            Chosen = new int[fullCores];
            _bestFull = new int[fullCores];
        }

        public string[] GroupNames { get; }

        /// <summary>The last plan's full cores, in plan order (most free first).</summary>
        public int[] Chosen { get; }

        /// <summary>The last plan's fragment core (when it has a fragment).</summary>
        public int Fragment { get; private set; }

        /// <summary>
        /// The index of the NUMA group the plan lies in, <see cref="AcrossNodes"/>, or <see cref="NoPlan"/>.
        /// Among the groups with a plan: one that keeps whole cores whole, then the most free pieces, then the
        /// group's name (ordinal), as a strict order.
        /// </summary>
        public int Find(int[] free, int x, int f)
        {
            var best = NoPlan;
            bool bestCuts = false;
            long bestFree = 0;
            var bestFragment = -1;
            for (var g = 0; g < _groups.Length; g++)
            {
                if (!Within(free, _groups[g], x, f)) continue;
                var cuts = f > 0 && free[Fragment] % 100 < f;
                long sum = 0;
                foreach (var c in _groups[g]) sum += free[c];
                // Groups are visited in name order, so a later group wins only when strictly better.
                if (best == NoPlan || (!cuts && bestCuts) || (cuts == bestCuts && sum > bestFree))
                {
                    (best, bestCuts, bestFree, bestFragment) = (g, cuts, sum, Fragment);
                    Array.Copy(Chosen, _bestFull, x);
                }
            }
            if (best != NoPlan)
            {
                Array.Copy(_bestFull, Chosen, x);
                Fragment = bestFragment;
                return best;
            }
            return Within(free, _all, x, f) ? AcrossNodes : NoPlan;
        }

        /// <summary>X full cores (most free pieces, then lowest id) and the fragment core among <paramref name="cores"/>.</summary>
        private bool Within(int[] free, int[] cores, int x, int f)
        {
            var found = 0;
            foreach (var c in cores)
            {
                var p = free[c];
                if (p < Full) continue;
                // Insert into the sorted top-x (free descending, then id ascending; ids come in ascending order).
                var at = found;
                while (at > 0 && free[Chosen[at - 1]] < p) at--;
                if (at >= x) continue;
                for (var k = Math.Min(found, x - 1); k > at; k--) Chosen[k] = Chosen[k - 1];
                Chosen[at] = c;
                if (found < x) found++;
            }
            if (found < x) return false;
            if (f == 0) return true;
            var fragment = -1;
            var key = 0L;
            foreach (var c in cores)
            {
                var p = free[c];
                if (p < f || Array.IndexOf(Chosen, c, 0, x) >= 0) continue;
                // A remainder first (keep whole cores whole), then the tightest: (remainder fits ? 0 : 1, free).
                var k = (p % Full >= f ? 0L : 1L << 32) + p;
                if (fragment < 0 || k < key) (fragment, key) = (c, k);
            }
            Fragment = fragment;
            return fragment >= 0;
        }
    }
}
