using EdgeEru.Registry;

namespace EdgeEru.Core.Deploy;

/// <summary>Remove: before_stop hooks, stop, remove the container, delete the record under the fence.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Removes workloads: before_stop hooks, stop (SIGTERM, then SIGKILL after <paramref name="stopTimeout"/>),
    /// remove the container, delete the record (bumping the node's fence); a container already gone still
    /// has its record deleted.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(IEnumerable<string> workloadIds, TimeSpan stopTimeout, CancellationToken ct = default) =>
        await RemoveAsync(workloadIds, stopTimeout, null, ct);

    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(IEnumerable<string> workloadIds, TimeSpan stopTimeout, Action<InstanceOutcome>? progress, CancellationToken ct = default) =>
        await RemoveAsync(workloadIds, stopTimeout, progress, hooks: true, ct);

    private async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(IEnumerable<string> workloadIds, TimeSpan stopTimeout, Action<InstanceOutcome>? progress, bool hooks, CancellationToken ct)
    {
        var outcomes = new List<InstanceOutcome>();
        foreach (var id in workloadIds)
        {
            var outcome = await RemoveOneAsync(id, stopTimeout, ct, hooks);
            outcomes.Add(outcome);
            progress?.Invoke(outcome);
        }
        return outcomes;
    }

    private async Task<InstanceOutcome> RemoveOneAsync(string id, TimeSpan stopTimeout, CancellationToken ct, bool hooks = true)
    {
        var record = await store.GetAsync(Kinds.Workloads, id, ct);
        if (record is null) return new InstanceOutcome("", id, null, $"no workload {id}");
        var w = record.Value;
        var node = await store.GetAsync(Kinds.Nodes, w.Node, ct);
        try
        {
            if (node is not null)
            {
                using var engine = engines(node.Value.Endpoint);
                if (hooks) await BeforeStopAsync(engine, w, ct);
                await engine.RemoveAsync(id, stopTimeout, ct);
            }
            await store.TransactAsync(async (tx, c) =>
            {
                var fence = await tx.GetAsync(Kinds.Allocations, w.Node, c);
                tx.Delete(Kinds.Workloads, id);
                tx.Put(Kinds.Allocations, NextFence(w.Node, fence));
                return true;
            }, ct: ct);
            return new InstanceOutcome(w.Node, id, w.Name, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The record stays while its container may still run: registry and Docker keep agreeing.
            return new InstanceOutcome(w.Node, id, w.Name, ex.Message);
        }
    }
}
