using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Deploy;

/// <summary>A node's free resources, derived from its workload records (there is no stored usage counter).</summary>
public static class NodeUsage
{
    public static NodeResources Free(Node node, IEnumerable<Workload> workloadsOnNode, string app)
    {
        var cap = node.Capacity;
        var pieces = Enumerable.Repeat(cap.PiecesPerCore, cap.CpuCores).ToArray();
        long memory = cap.MemoryBytes;
        var existing = 0;
        foreach (var w in workloadsOnNode)
        {
            memory -= w.Resources.MemoryRequestBytes;
            foreach (var b in w.Resources.CpuBind)
                if (b.Core < pieces.Length) pieces[b.Core] -= b.Pieces;
            if (w.App == app) existing++;
        }
        var numa = new string[cap.CpuCores];
        foreach (var n in cap.Numa)
            foreach (var cpu in n.Cpus)
                if (cpu < numa.Length) numa[cpu] = n.Id;
        return new NodeResources
        {
            Name = node.Name,
            PiecesPerCore = cap.PiecesPerCore,
            FreePieces = pieces.Select(p => Math.Max(0, p)).ToArray(),
            CoreNuma = cap.Numa.Length > 0 && numa.All(n => n is not null) ? numa : [],
            FreeMemory = Math.Max(0, memory),
            TotalMemory = cap.MemoryBytes,
            Existing = existing,
        };
    }
}
