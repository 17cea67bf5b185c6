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
        var capacity = new int[ordered.Length];
        var reasons = new Dictionary<string, string>();
        for (var i = 0; i < ordered.Length; i++)
        {
            capacity[i] = Limit(ordered[i], Capacity(ordered[i], request.Resources, upTo), request.PerNodeLimit);
            if (capacity[i] == 0) reasons[ordered[i].Name] = Reason(ordered[i], request);
        }
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
    private static PlacementResult? PlaceEachOrFill(NodeResources[] ordered, int[] capacity, int[] placed, PlacementRequest request,
        Dictionary<string, string> reasons)
    {
        for (var i = 0; i < ordered.Length; i++)
        {
            var n = ordered[i];
            var want = request.Strategy == Strategy.Each ? request.Count : Math.Max(0, request.Count - n.Existing);
            if (want > capacity[i])
                return Fail($"node {n.Name} has room for {capacity[i]}, needs {want}",
                    reasons.Count > 0 ? reasons : new() { [n.Name] = Reason(n, request) });
            placed[i] = want;
        }
        return null;
    }

    /// <summary>AUTO: one at a time onto the node with the fewest of the app, then the most room left.</summary>
    private static PlacementResult? PlaceAuto(NodeResources[] ordered, int[] capacity, int[] placed, PlacementRequest request,
        Dictionary<string, string> reasons)
    {
        // Min-heap on (instances of the app on the node, -room left, name); name order = index order.
        var heap = new PriorityQueue<int, (int Count, int Room, int Index)>(
            Enumerable.Range(0, ordered.Length).Where(i => capacity[i] > 0).Select(i => (i, (ordered[i].Existing, capacity[i], i))),
            Comparer<(int Count, int Room, int Index)>.Create((a, b) =>
                a.Count != b.Count ? a.Count.CompareTo(b.Count)
                : a.Room != b.Room ? b.Room.CompareTo(a.Room)
                : a.Index.CompareTo(b.Index)));
        for (var k = 0; k < request.Count; k++)
        {
            if (!heap.TryDequeue(out var i, out _)) return Fail(Short(request, k), reasons);
            var p = ++placed[i];
            if (p < capacity[i]) heap.Enqueue(i, (ordered[i].Existing + p, capacity[i] - p, i));
        }
        return null;
    }

    /// <summary>GLOBAL: one at a time where relative usage (memory and CPU) after placing is lowest.</summary>
    private static PlacementResult? PlaceGlobal(NodeResources[] ordered, int[] capacity, int[] placed, PlacementRequest request,
        Dictionary<string, string> reasons)
    {
        // A node's usage after one more only grows with what it got, so a min-heap on (usage, name) picks
        // exactly what a scan of every node in name order would.
        var used = Array.ConvertAll(ordered, UsedPieces);
        var heap = new PriorityQueue<int, (double Usage, int Index)>(Enumerable.Range(0, ordered.Length).Where(i => capacity[i] > 0)
            .Select(i => (i, (UsageAfter(ordered[i], used[i], request.Resources, 1), i))));
        for (var k = 0; k < request.Count; k++)
        {
            if (!heap.TryDequeue(out var i, out _)) return Fail(Short(request, k), reasons);
            var p = ++placed[i];
            if (p < capacity[i]) heap.Enqueue(i, (UsageAfter(ordered[i], used[i], request.Resources, p + 1), i));
        }
        return null;
    }

    /// <summary>DRAINED: the fullest nodes first, each filled before the next.</summary>
    private static PlacementResult? PlaceDrained(NodeResources[] ordered, int[] capacity, int[] placed, PlacementRequest request,
        Dictionary<string, string> reasons)
    {
        var left = request.Count;
        var fullest = Enumerable.Range(0, ordered.Length)
            .OrderByDescending(i => UsageAfter(ordered[i], UsedPieces(ordered[i]), request.Resources, 0)).ThenBy(i => i);
        foreach (var i in fullest)
        {
            var take = Math.Min(left, capacity[i]);
            placed[i] = take;
            left -= take;
            if (left == 0) break;
        }
        return left > 0 ? Fail(Short(request, request.Count - left), reasons) : null;
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
        long free = 0;
        foreach (var p in n.FreePieces) free += p;
        return (long)n.PiecesPerCore * n.CpuCores - free;
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

    private static PlacementResult Fail(string error, Dictionary<string, string> reasons) =>
        new(new Dictionary<string, int>(), error, reasons);
}
