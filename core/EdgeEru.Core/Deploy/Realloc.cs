using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>Realloc: new resources for running workloads in place, recorded under the fence, then docker update.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Changes the resources of existing workloads in place, each on its own node: re-planned with the
    /// workload's own allocation counted as free (bound cores kept when still valid), recorded under the
    /// node's allocation fence, then applied with docker update. A workload that does not fit is refused
    /// with the reason and stays as it was; when Docker refuses the update, the record is put back.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> ReallocAsync(
        IEnumerable<string> workloadIds, ReallocSpec spec, Action<InstanceOutcome>? progress = null, CancellationToken ct = default)
    {
        var outcomes = new List<InstanceOutcome>();
        var problems = spec.Problems();
        foreach (var id in workloadIds)
        {
            var outcome = problems.Count > 0
                ? new InstanceOutcome("", id, null, "invalid realloc: " + string.Join("; ", problems))
                : await ReallocOneAsync(id, spec, ct);
            outcomes.Add(outcome);
            progress?.Invoke(outcome);
        }
        return outcomes;
    }

    private async Task<InstanceOutcome> ReallocOneAsync(string id, ReallocSpec spec, CancellationToken ct)
    {
        var record = await store.GetAsync(Kinds.Workloads, id, ct);
        if (record is null) return new InstanceOutcome("", id, null, $"no workload {id}");
        if (await store.GetAsync(Kinds.Nodes, record.Value.Node, ct) is not { } nodeRecord)
            return new InstanceOutcome(record.Value.Node, id, record.Value.Name, $"node {record.Value.Node} is gone");
        var node = nodeRecord.Value;
        Workload before;
        ResourceAllocation after;
        // A crash between the record and docker update leaves them apart: the reaper applies the record.
        var intent = await IntendAsync(Intent.Realloc, node.Name, id, ct: ct);
        for (var attempt = 1; ; attempt++)
        {
            var tx = store.Begin();
            var fence = await tx.GetAsync(Kinds.Allocations, node.Name, ct);
            await YieldAsync("realloc-fence-read", ct);
            var self = await tx.GetAsync(Kinds.Workloads, id, ct);
            if (self is null)
            {
                await DoneAsync(intent);
                return new InstanceOutcome(node.Name, id, record.Value.Name, $"no workload {id} (removed meanwhile)");
            }
            var others = (await WorkloadsAsync(fence?.ModRevision ?? 0, node.Name, ct, tx.ReadRevision)).Where(w => w.Id != id);
            var (allocation, reason) = Realloc.Plan(NodeUsage.Free(node, others, self.Value.App), self.Value.Resources, spec);
            if (allocation is null)
            {
                await DoneAsync(intent);
                return new InstanceOutcome(node.Name, id, self.Value.Name, $"does not fit on {node.Name}: {reason}; it keeps its resources")
                {
                    Resources = self.Value.Resources,
                };
            }
            tx.Put(Kinds.Workloads, self.Value with { Resources = allocation });
            tx.Put(Kinds.Allocations, NextFence(node.Name, fence));
            await YieldAsync("realloc-before-commit", ct);
            if (await tx.CommitAsync(ct))
            {
                (before, after) = (self.Value, allocation);
                break;
            }
            if (attempt >= Attempts)
            {
                await DoneAsync(intent);
                return new InstanceOutcome(node.Name, id, self.Value.Name, new RegistryConflictException(Attempts).Message);
            }
            await Task.Delay(Random.Shared.Next(5, 30), ct);
        }
        try
        {
            await YieldAsync("realloc-committed", ct);
            using var engine = Host(node);
            // Concurrent reallocs of one workload may reach Docker in another order than they committed:
            // after applying, look again, and follow the record until what was applied is still current.
            var applied = after;
            for (var round = 1; ; round++)
            {
                var bound = applied.CpuBind.Length > 0;
                await engine.UpdateResourcesAsync(id, applied.MemoryLimitBytes, bound ? 0 : applied.CpuLimit,
                    bound ? DockerEngine.Cpuset(applied.CpuBind.Select(b => b.Core)) : null, applied.NumaNode, ct);
                await YieldAsync("realloc-applied", ct);
                var now = await store.GetAsync(Kinds.Workloads, id, ct);
                if (now is null || now.Value.Resources.Equals(applied)) break;
                if (round >= Attempts) throw new RegistryConflictException(round);
                applied = now.Value.Resources;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Docker kept the old limits: so does the registry (unless someone changed the record since).
            await store.TransactAsync(async (tx, c) =>
            {
                var fence = await tx.GetAsync(Kinds.Allocations, node.Name, c);
                if (await tx.GetAsync(Kinds.Workloads, id, c) is { } now && now.Value.Resources.Equals(after))
                {
                    tx.Put(Kinds.Workloads, now.Value with { Resources = before.Resources });
                    tx.Put(Kinds.Allocations, NextFence(node.Name, fence));
                }
                return true;
            }, ct: CancellationToken.None);
            await DoneAsync(intent);
            log.LogWarning("realloc {Name}: docker update failed: {Error}", before.Name, ex.Message);
            return new InstanceOutcome(node.Name, id, before.Name, $"docker update failed: {ex.Message}; it keeps its resources")
            {
                Resources = before.Resources,
            };
        }
        await DoneAsync(intent);
        log.LogInformation("realloc {Name} on {Node}: memory {Memory}, cpu {Cpu}{Bound}",
            before.Name, node.Name, after.MemoryRequestBytes, after.CpuRequest,
            after.CpuBind.Length > 0 ? " bound to " + DockerEngine.Cpuset(after.CpuBind.Select(b => b.Core)) : "");
        return new InstanceOutcome(node.Name, id, before.Name, null) { Resources = after };
    }
}
