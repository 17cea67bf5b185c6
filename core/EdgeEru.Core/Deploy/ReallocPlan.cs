using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Deploy;

/// <summary>New resources for existing workloads; an unset field keeps the workload's current value.</summary>
public sealed record ReallocSpec
{
    public long? MemoryRequest { get; init; }

    /// <summary>
    /// Unset: follows the request when the workload's limit equalled its request, else stays (raised to the request if below).
    /// </summary>
    public long? MemoryLimit { get; init; }

    public double? Cpu { get; init; }

    /// <summary>The CFS quota of an unbound workload. Unset: follows <see cref="Cpu"/> like the memory limit.</summary>
    public double? CpuLimit { get; init; }

    public bool? CpuBind { get; init; }

    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (MemoryRequest is null && MemoryLimit is null && Cpu is null && CpuLimit is null && CpuBind is null)
            p.Add("nothing to change: give memory, cpu or cpu bind");
        if (MemoryRequest < 0) p.Add("memory request must not be negative");
        if (MemoryLimit < 0) p.Add("memory limit must not be negative");
        if (Cpu < 0) p.Add("cpu must not be negative");
        if (CpuLimit < 0) p.Add("cpu limit must not be negative");
        return p;
    }
}

/// <summary>
/// Re-planning one workload's resources on its own node (pure): the node's free resources are counted
/// without the workload itself, so what it holds is available to it again. Bound cores are kept when they
/// still make a valid plan, else as many of them as possible are reused, else a fresh plan is made.
/// </summary>
public static class Realloc
{
    private const int Full = 100;

    /// <summary>The workload's resources after <paramref name="spec"/>, before checking that they fit (cores not yet planned).</summary>
    private static (ResourceAllocation Wanted, bool Bind) Wanted(ResourceAllocation current, ReallocSpec spec)
    {
        var memory = spec.MemoryRequest ?? current.MemoryRequestBytes;
        var limit = spec.MemoryLimit
            ?? (current.MemoryLimitBytes == current.MemoryRequestBytes ? memory
                : current.MemoryLimitBytes > 0 ? Math.Max(current.MemoryLimitBytes, memory) : 0);
        var cpu = spec.Cpu ?? current.CpuRequest;
        var cpuLimit = spec.CpuLimit ?? (Math.Abs(current.CpuLimit - current.CpuRequest) < 1e-9 ? cpu : Math.Max(current.CpuLimit, cpu));
        var bind = spec.CpuBind ?? current.CpuBind.Length > 0;
        return (
            new ResourceAllocation { MemoryRequestBytes = memory, MemoryLimitBytes = limit, CpuRequest = cpu, CpuLimit = cpuLimit },
            bind);
    }

    /// <summary>
    /// The workload's new allocation on a node with <paramref name="free"/> (computed without the workload),
    /// or why it does not fit.
    /// </summary>
    public static (ResourceAllocation? Allocation, string? Reason) Plan(NodeResources free, ResourceAllocation current, ReallocSpec spec)
    {
        var (wanted, bind) = Wanted(current, spec);
        var request = new ResourceRequest { Memory = wanted.MemoryRequestBytes, Cpu = wanted.CpuRequest, CpuBind = bind };
        var problems = request.Problems().ToList();
        if (wanted.MemoryLimitBytes > 0 && wanted.MemoryRequestBytes > wanted.MemoryLimitBytes)
            problems.Add($"memory request {wanted.MemoryRequestBytes} is above the limit {wanted.MemoryLimitBytes}");
        if (wanted.MemoryLimitBytes == 0 && current.MemoryLimitBytes > 0)
            problems.Add("a running container's memory limit cannot be removed (Docker cannot unset it): give a limit");
        if (!bind && wanted.CpuLimit > 0 && wanted.CpuRequest > wanted.CpuLimit)
            problems.Add($"cpu {wanted.CpuRequest} is above the cpu limit {wanted.CpuLimit}");
        if (problems.Count > 0) return (null, string.Join("; ", problems));
        if (wanted.MemoryRequestBytes > free.FreeMemory)
            return (null, $"free memory {free.FreeMemory} < request {wanted.MemoryRequestBytes}");
        if (!bind)
        {
            if (wanted.CpuRequest > free.CpuCores) return (null, $"cpu {wanted.CpuRequest} > {free.CpuCores} cores");
            return (wanted, null);
        }
        var plan = Keep(free, current, request) ?? Extend(free, current, request)
            ?? CpuPlanner.Plan(free.FreePieces, free.CoreNuma, request);
        if (plan is null) return (null, $"no core plan for {wanted.CpuRequest} bound cpus");
        return (wanted with
        {
            CpuLimit = wanted.CpuRequest, // bound: the cores are the limit
            CpuBind = [.. plan.Cores.Select(c => new CpuBinding { Core = c.Core, Pieces = c.Pieces })],
            NumaNode = plan.Numa,
        }, null);
    }

    /// <summary>The current binding, unchanged, when it has the wanted shape and its cores are still free.</summary>
    private static CpuPlan? Keep(NodeResources free, ResourceAllocation current, ResourceRequest r)
    {
        var cores = current.CpuBind.Select(b => (b.Core, b.Pieces)).ToList();
        var shape = Enumerable.Repeat(Full, r.FullCores).Concat(r.FragmentPieces > 0 ? [r.FragmentPieces] : []).Order().ToList();
        if (cores.Count == 0 || !cores.Select(c => c.Pieces).Order().SequenceEqual(shape) || !Valid(free, cores)) return null;
        return new CpuPlan(cores, current.NumaNode);
    }

    /// <summary>
    /// A plan reusing the current cores first: full cores among them that still have a whole core free,
    /// then the roomiest others; the fragment on a current core if one fits it, else the tightest other.
    /// </summary>
    private static CpuPlan? Extend(NodeResources free, ResourceAllocation current, ResourceRequest r)
    {
        var mine = current.CpuBind.Select(b => b.Core).Where(c => c < free.CpuCores).ToHashSet();
        if (mine.Count == 0) return null;
        var order = Enumerable.Range(0, free.CpuCores).OrderBy(c => mine.Contains(c) ? 0 : 1);
        var full = order.Where(c => free.FreePieces[c] >= Full)
            .OrderBy(c => mine.Contains(c) ? 0 : 1).ThenByDescending(c => free.FreePieces[c]).ThenBy(c => c).Take(r.FullCores).ToList();
        if (full.Count < r.FullCores) return null;
        var cores = full.Select(c => (c, Full)).ToList();
        if (r.FragmentPieces > 0)
        {
            var fragment = order.Where(c => !full.Contains(c) && free.FreePieces[c] >= r.FragmentPieces)
                .OrderBy(c => mine.Contains(c) ? 0 : 1).ThenBy(c => free.FreePieces[c] % Full >= r.FragmentPieces ? 0 : 1)
                .ThenBy(c => free.FreePieces[c]).ThenBy(c => c)
                .Cast<int?>().FirstOrDefault();
            if (fragment is null) return null;
            cores.Add((fragment.Value, r.FragmentPieces));
        }
        if (!Valid(free, cores)) return null;
        var numa = free.CoreNuma.Length == free.CpuCores ? cores.Select(c => free.CoreNuma[c.Item1]).Distinct().ToList() : [];
        return new CpuPlan(cores, numa.Count == 1 ? numa[0] : null);
    }

    private static bool Valid(NodeResources free, IReadOnlyList<(int Core, int Pieces)> cores) =>
        cores.Select(c => c.Core).Distinct().Count() == cores.Count
        && cores.All(c => c.Core >= 0 && c.Core < free.CpuCores && c.Pieces <= Full && free.FreePieces[c.Core] >= c.Pieces);
}
