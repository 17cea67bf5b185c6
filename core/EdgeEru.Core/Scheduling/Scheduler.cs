namespace EdgeEru.Core.Scheduling;

public enum Strategy
{
    /// <summary>Spread so the app's instances per node are as even as possible.</summary>
    Auto,

    /// <summary>Bring each chosen node up to N instances.</summary>
    Fill,

    /// <summary>N more on every chosen node.</summary>
    Each,

    /// <summary>Where relative resource usage after placement is lowest.</summary>
    Global,

    /// <summary>The fullest nodes first.</summary>
    Drained,
}

public sealed record PlacementRequest(ResourceRequest Resources, int Count, Strategy Strategy, int PerNodeLimit = 0);

/// <summary>How many instances go to each node, or why it cannot be done (per node).</summary>
public sealed record PlacementResult(
    IReadOnlyDictionary<string, int> PerNode, string? Error, IReadOnlyDictionary<string, string> NodeReasons)
{
    public bool Ok => Error is null;
    public int Total => PerNode.Values.Sum();
}

/// <summary>
/// Pure placement: capacities (memory first) and strategies. No I/O; deterministic (ties broken by
/// node name); every comparison is a strict weak ordering.
/// </summary>
public static class Scheduler
{
    /// <summary>A ceiling for requests that ask for no memory, so that capacity stays finite.</summary>
    public const int MaxPerNode = 10_000;

    /// <summary>
    /// Memory first: free memory / memory request; with CPU bind also the number of CPU plans; without
    /// bind zero if the request exceeds the node's cores (CPU is then a CFS quota at run time).
    /// </summary>
    public static int Capacity(NodeResources node, ResourceRequest r) => Capacity(node, r, MaxPerNode);

    /// <summary>
    /// min(<see cref="Capacity(NodeResources, ResourceRequest)"/>, <paramref name="limit"/>): no CPU plans are counted past it.
    /// </summary>
    private static int Capacity(NodeResources node, ResourceRequest r, int limit)
    {
        var memory = r.Memory > 0 ? (int)Math.Min(node.FreeMemory / r.Memory, limit) : limit;
        if (!r.CpuBind) return r.Cpu > node.CpuCores ? 0 : memory;
        return Math.Min(memory, CpuPlanner.Capacity(node.FreePieces, node.CoreNuma, r, limit: memory));
    }

    /// <remarks>
    /// Costs O(nodes · log nodes) plus O(count · log nodes) for AUTO and GLOBAL (heaps), so that planning a
    /// deploy stays far below the time Docker takes to create one container, even over thousands of nodes.
    /// A bound request's exact count of CPU plans is only computed for the nodes a strategy reaches (see
    /// <see cref="NodeCapacities"/>), and the reasons for nodes without room only when they are read.
    /// </remarks>
    public static PlacementResult Place(IReadOnlyList<NodeResources> nodes, PlacementRequest request)
    {
        var problems = request.Resources.Problems().ToList();
        if (request.Count <= 0) problems.Add($"count {request.Count} must be positive");
        if (request.PerNodeLimit < 0) problems.Add("per-node limit must not be negative");
        if (problems.Count > 0) return Fail(string.Join("; ", problems), new Dictionary<string, string>());

        // Everything below is indexed by position in name order.
        var ordered = nodes.ToArray();
        if (!InNameOrder(ordered)) Array.Sort(ordered, (a, b) => string.CompareOrdinal(a.Name, b.Name)); // the registry lists them in order
        // Only AUTO weighs the room left beyond the count (it prefers roomier nodes); every other strategy
        // puts at most Count on a node, so counting CPU plans past it would change nothing.
        var upTo = request.Strategy == Strategy.Auto ? MaxPerNode : Math.Min(request.Count, MaxPerNode);
        var capacity = new NodeCapacities(ordered, request, upTo);
        var reasons = new NodeReasons(capacity);
        var placed = new int[ordered.Length];

        var failed = request.Strategy switch
        {
            Strategy.Each or Strategy.Fill => PlaceEachOrFill(ordered, capacity, placed, request, reasons),
            Strategy.Auto => PlaceAuto(ordered, capacity, placed, request, reasons),
            Strategy.Global => PlaceGlobal(ordered, capacity, placed, request, reasons),
            Strategy.Drained => PlaceDrained(ordered, capacity, placed, request, reasons),
            _ => Fail($"strategy {request.Strategy} is unknown", reasons),
        };
        if (failed is not null) return failed;
        var perNode = new Dictionary<string, int>();
        for (var i = 0; i < ordered.Length; i++)
            if (placed[i] > 0) perNode[ordered[i].Name] = placed[i];
        return new PlacementResult(perNode, null, reasons);
    }

    /// <summary>EACH: count on every node; FILL: every node topped up to count. Null when placed, else why not.</summary>
    private static PlacementResult? PlaceEachOrFill(NodeResources[] ordered, NodeCapacities capacity, int[] placed,
        PlacementRequest request, NodeReasons reasons)
    {
        for (var i = 0; i < ordered.Length; i++)
        {
            var n = ordered[i];
            var want = request.Strategy == Strategy.Each ? request.Count : Math.Max(0, request.Count - n.Existing);
            if (want == 0) continue; // nothing to fit: its room only matters to the reasons
            if (want > capacity.Exact(i))
                return Fail($"node {n.Name} has room for {capacity.Exact(i)}, needs {want}",
                    reasons.Count > 0 ? reasons : new Dictionary<string, string> { [n.Name] = Reason(n, request) });
            placed[i] = want;
        }
        return null;
    }

    /// <summary>AUTO: one at a time onto the node with the fewest of the app, then the most room left.</summary>
    /// <remarks>
    /// A node enters the heap with a bound on its room (<see cref="NodeCapacities.Bound"/>, never below the exact
    /// room) and gets its exact room when it first comes out on top, going back in with it. A bound only sorts a
    /// node earlier than its exact room would, so the first node to come out with its exact room is the one a
    /// heap of exact rooms would give: the same placements, counting CPU plans only on the nodes that compete.
    /// </remarks>
    private static PlacementResult? PlaceAuto(NodeResources[] ordered, NodeCapacities capacity, int[] placed,
        PlacementRequest request, NodeReasons reasons)
    {
        // With bound rooms every node must compete (an exact room may sort a node far later); exact rooms let
        // the heap start from the count smallest keys.
        var start = new SmallestKeys<AutoKey>(request.Resources.CpuBind ? int.MaxValue : request.Count, ordered.Length);
        for (var i = 0; i < ordered.Length; i++)
            if (capacity.Bound(i) is var room and > 0) start.Offer(i, new AutoKey(ordered[i].Existing, room, i));
        var heap = new PriorityQueue<int, AutoKey>(start.Entries);
        for (var k = 0; k < request.Count;)
        {
            if (!heap.TryDequeue(out var i, out _)) return Fail(Short(request, k), reasons);
            if (!capacity.IsExact(i))
            {
                if (capacity.Exact(i) > 0) heap.Enqueue(i, new AutoKey(ordered[i].Existing, capacity.Exact(i), i));
                continue;
            }
            var p = ++placed[i];
            k++;
            if (p < capacity.Exact(i)) heap.Enqueue(i, new AutoKey(ordered[i].Existing + p, capacity.Exact(i) - p, i));
        }
        return null;
    }

    /// <summary>AUTO's order: fewest instances of the app, then most room left, then name (= index).</summary>
    private readonly record struct AutoKey(int Count, int Room, int Index) : IComparable<AutoKey>
    {
        public int CompareTo(AutoKey other) =>
            Count != other.Count ? Count.CompareTo(other.Count)
            : Room != other.Room ? other.Room.CompareTo(Room)
            : Index.CompareTo(other.Index);
    }

    /// <summary>GLOBAL: one at a time where relative usage (memory and CPU) after placing is lowest.</summary>
    private static PlacementResult? PlaceGlobal(NodeResources[] ordered, NodeCapacities capacity, int[] placed,
        PlacementRequest request, NodeReasons reasons)
    {
        // A node's usage after one more only grows with what it got, so a min-heap on (usage, name) picks
        // exactly what a scan of every node in name order would. The order does not depend on room, so a
        // node's exact room is counted when it first comes out on top (none: it leaves the heap).
        // Without binding every node in the heap has room, so (as with AUTO) the first count turns only take
        // the count smallest keys and what they put back; with binding a node may turn out to have none.
        var used = new long[ordered.Length];
        var start = new SmallestKeys<GlobalKey>(request.Resources.CpuBind ? int.MaxValue : request.Count, ordered.Length);
        for (var i = 0; i < ordered.Length; i++)
        {
            if (capacity.Bound(i) == 0) continue;
            used[i] = UsedPieces(ordered[i]);
            start.Offer(i, new GlobalKey(UsageAfter(ordered[i], used[i], request.Resources, 1), i));
        }
        var heap = new PriorityQueue<int, GlobalKey>(start.Entries);
        for (var k = 0; k < request.Count;)
        {
            if (!heap.TryDequeue(out var i, out _)) return Fail(Short(request, k), reasons);
            if (capacity.Exact(i) == 0) continue;
            var p = ++placed[i];
            k++;
            if (p < capacity.Exact(i)) heap.Enqueue(i, new GlobalKey(UsageAfter(ordered[i], used[i], request.Resources, p + 1), i));
        }
        return null;
    }

    /// <summary>GLOBAL's order: lowest usage after placing, then name (= index).</summary>
    private readonly record struct GlobalKey(double Usage, int Index) : IComparable<GlobalKey>
    {
        public int CompareTo(GlobalKey other)
        {
            var byUsage = Usage.CompareTo(other.Usage);
            return byUsage != 0 ? byUsage : Index.CompareTo(other.Index);
        }
    }

    /// <summary>DRAINED: the fullest nodes first, each filled before the next.</summary>
    private static PlacementResult? PlaceDrained(NodeResources[] ordered, NodeCapacities capacity, int[] placed,
        PlacementRequest request, NodeReasons reasons)
    {
        var left = request.Count;
        var entries = new (int, DrainedKey)[ordered.Length];
        for (var i = 0; i < ordered.Length; i++)
            entries[i] = (i, new DrainedKey(UsageAfter(ordered[i], UsedPieces(ordered[i]), request.Resources, 0), i));
        // A heap, not a sort: only the fullest nodes up to the count are visited.
        var fullest = new PriorityQueue<int, DrainedKey>(entries);
        while (left > 0 && fullest.TryDequeue(out var i, out _))
        {
            var take = Math.Min(left, capacity.Exact(i));
            placed[i] = take;
            left -= take;
        }
        return left > 0 ? Fail(Short(request, request.Count - left), reasons) : null;
    }

    /// <summary>DRAINED's order: highest usage first, then name (= index).</summary>
    private readonly record struct DrainedKey(double Usage, int Index) : IComparable<DrainedKey>
    {
        public int CompareTo(DrainedKey other)
        {
            var byUsage = other.Usage.CompareTo(Usage);
            return byUsage != 0 ? byUsage : Index.CompareTo(other.Index);
        }
    }

    /// <summary>
    /// The room of each node for one request (<see cref="Capacity(NodeResources, ResourceRequest, int)"/> up to
    /// the strategy's need, within the per-node limit), computed when first asked. Without CPU binding it is a
    /// division; with it, counting CPU plans takes a simulation, so strategies that can start from a bound ask
    /// <see cref="Bound"/> first and the exact room only of the nodes they reach.
    /// </summary>
    internal sealed class NodeCapacities
    {
        private readonly NodeResources[] _nodes;
        private readonly PlacementRequest _request;
        private readonly int _upTo;
        private readonly int[] _exact; // -1: not counted yet
        private readonly Dictionary<CoreState, (int Plans, int Limit)> _plans = new(CoreState.Alike);

        public NodeCapacities(NodeResources[] nodes, PlacementRequest request, int upTo)
        {
            (_nodes, _request, _upTo) = (nodes, request, upTo);
            _exact = new int[nodes.Length];
            Array.Fill(_exact, -1);
        }

        public int Count => _nodes.Length;

        public NodeResources Node(int i) => _nodes[i];

        public PlacementRequest Request => _request;

        public bool IsExact(int i) => _exact[i] >= 0;

        public int Exact(int i)
        {
            if (_exact[i] < 0) _exact[i] = Limit(_nodes[i], Room(_nodes[i]), _request.PerNodeLimit);
            return _exact[i];
        }

        /// <summary><see cref="Capacity(NodeResources, ResourceRequest, int)"/>, counting CPU plans once per alike cores.</summary>
        private int Room(NodeResources n)
        {
            var r = _request.Resources;
            if (!r.CpuBind) return Capacity(n, r, _upTo);
            var memory = r.Memory > 0 ? (int)Math.Min(n.FreeMemory / r.Memory, _upTo) : _upTo;
            if (memory == 0) return 0;
            // Nodes of one shape with the same free pieces (untouched ones, above all) have the same plans. The
            // count is min(plans, limit): a count below its limit is all there are, else it holds up to that limit.
            var key = new CoreState(n.FreePieces, n.CoreNuma);
            if (_plans.TryGetValue(key, out var known) && (known.Plans < known.Limit || memory <= known.Limit))
                return Math.Min(known.Plans, memory);
            var plans = CpuPlanner.Capacity(n.FreePieces, n.CoreNuma, r, limit: memory);
            _plans[key] = (plans, memory);
            return plans;
        }

        /// <summary>Never below <see cref="Exact"/>; the exact room where that is as cheap (and then remembered).</summary>
        public int Bound(int i)
        {
            var r = _request.Resources;
            if (_exact[i] >= 0 || !r.CpuBind) return Exact(i);
            var n = _nodes[i];
            var memory = r.Memory > 0 ? (int)Math.Min(n.FreeMemory / r.Memory, _upTo) : _upTo;
            var bound = Limit(n, Math.Min(memory, CpuPlanner.QuickBound(n.FreePieces, r)), _request.PerNodeLimit);
            if (bound == 0) _exact[i] = 0; // the exact room is below it
            return bound;
        }
    }

    /// <summary>A node's free pieces per core and their NUMA nodes, compared by content.</summary>
    private readonly record struct CoreState(int[] FreePieces, string[] CoreNuma)
    {
        public static readonly IEqualityComparer<CoreState> Alike = new AlikeComparer();

        private sealed class AlikeComparer : IEqualityComparer<CoreState>
        {
            public bool Equals(CoreState a, CoreState b) =>
                a.FreePieces.AsSpan().SequenceEqual(b.FreePieces)
                && (ReferenceEquals(a.CoreNuma, b.CoreNuma) || a.CoreNuma.AsSpan().SequenceEqual(b.CoreNuma));

            public int GetHashCode(CoreState s)
            {
                var hash = new HashCode();
                hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.FreePieces.AsSpan()));
                return hash.ToHashCode();
            }
        }
    }

    /// <summary>
    /// Why each node without room has none, worked out when first read: a deploy that is placed rarely
    /// reads it, and formatting a reason for every full node of a large cluster would cost more than placing.
    /// </summary>
    private sealed class NodeReasons(NodeCapacities capacity) : IReadOnlyDictionary<string, string>
    {
        private readonly Lazy<Dictionary<string, string>> _reasons = new(() =>
        {
            var reasons = new Dictionary<string, string>();
            for (var i = 0; i < capacity.Count; i++)
                if (capacity.Exact(i) == 0) reasons[capacity.Node(i).Name] = Reason(capacity.Node(i), capacity.Request);
            return reasons;
        });

        public string this[string key] => _reasons.Value[key];

        public IEnumerable<string> Keys => _reasons.Value.Keys;

        public IEnumerable<string> Values => _reasons.Value.Values;

        public int Count => _reasons.Value.Count;

        public bool ContainsKey(string key) => _reasons.Value.ContainsKey(key);

        public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out string value) =>
            _reasons.Value.TryGetValue(key, out value);

        public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _reasons.Value.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private static bool InNameOrder(NodeResources[] nodes)
    {
        for (var i = 1; i < nodes.Length; i++)
            if (string.CompareOrdinal(nodes[i - 1].Name, nodes[i].Name) >= 0) return false;
        return true;
    }

    /// <summary>Pieces in use on a node (of its cores × pieces per core).</summary>
    private static long UsedPieces(NodeResources n)
    {
        var total = (long)n.PiecesPerCore * n.CpuCores;
        // Free pieces are at most pieces per core each: then an int sum (vectorized) cannot overflow.
        long free = 0;
        if (total <= int.MaxValue && n.PiecesPerCore >= 0 && !n.FreePieces.AsSpan().ContainsAnyExceptInRange(0, n.PiecesPerCore))
            free = n.FreePieces.Sum();
        else
            foreach (var p in n.FreePieces) free += p;
        return total - free;
    }

    /// <summary>Relative usage of a node after <paramref name="more"/> instances: memory and CPU fractions, averaged.</summary>
    private static double UsageAfter(NodeResources n, long usedPieces, ResourceRequest r, int more)
    {
        var memory = n.TotalMemory > 0 ? (n.TotalMemory - n.FreeMemory + (double)r.Memory * more) / n.TotalMemory : 0;
        var totalPieces = (double)n.PiecesPerCore * n.CpuCores;
        var cpu = totalPieces > 0 ? (usedPieces + r.Cpu * 100 * more) / totalPieces : 0;
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

    private static PlacementResult Fail(string error, IReadOnlyDictionary<string, string> reasons) =>
        new(new Dictionary<string, int>(), error, reasons);
}
