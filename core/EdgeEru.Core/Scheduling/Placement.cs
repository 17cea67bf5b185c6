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
public sealed record PlacementResult(IReadOnlyDictionary<string, int> PerNode, string? Error, IReadOnlyDictionary<string, string> NodeReasons)
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
    public static int Capacity(NodeResources node, ResourceRequest r)
    {
        var memory = r.Memory > 0 ? (int)Math.Min(node.FreeMemory / r.Memory, MaxPerNode) : MaxPerNode;
        if (!r.CpuBind) return r.Cpu > node.CpuCores ? 0 : memory;
        return Math.Min(memory, CpuPlanner.Capacity(node.FreePieces, node.CoreNuma, r));
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
                        return Fail($"node {n.Name} has room for {capacity[n.Name]}, needs {want}", reasons.Count > 0 ? reasons : new() { [n.Name] = Reason(n, request) });
                    placed[n.Name] = want;
                }
                break;
            case Strategy.Auto:
            {
                // Min-heap on (instances of the app on the node, -room left, name).
                var heap = new PriorityQueue<NodeResources, (int Count, int Room, string Name)>(Comparer<(int Count, int Room, string Name)>.Create((a, b) =>
                    a.Count != b.Count ? a.Count.CompareTo(b.Count) : a.Room != b.Room ? b.Room.CompareTo(a.Room) : string.CompareOrdinal(a.Name, b.Name)));
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
                foreach (var n in ordered.OrderByDescending(n => UsageAfter(n, request.Resources, 0)).ThenBy(n => n.Name, StringComparer.Ordinal))
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
