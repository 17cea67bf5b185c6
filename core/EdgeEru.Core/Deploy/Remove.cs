using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>Remove: before_stop hooks, stop, remove the container, delete the record under the fence.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Removes workloads: before_stop hooks, stop (SIGTERM, then SIGKILL after <paramref name="stopTimeout"/>),
    /// remove the container, delete the record (bumping the node's fence); a container already gone still
    /// has its record deleted.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(
        IEnumerable<string> workloadIds, TimeSpan stopTimeout, CancellationToken ct = default) =>
        await RemoveAsync(workloadIds, stopTimeout, null, ct);

    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(
        IEnumerable<string> workloadIds, TimeSpan stopTimeout, Action<InstanceOutcome>? progress, CancellationToken ct = default) =>
        await RemoveAsync(workloadIds, stopTimeout, progress, hooks: true, ct);

    /// <summary>As above; without <paramref name="hooks"/> the before_stop hooks are skipped (ignore_hook).</summary>
    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(
        IEnumerable<string> workloadIds, TimeSpan stopTimeout, Action<InstanceOutcome>? progress,
        bool hooks, CancellationToken ct)
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
        Intent? intent = null;
        try
        {
            using var engine = node is null ? null : engines(node.Value.Endpoint);
            // From here a crash is finished by the reaper: container, record and volumes go.
            intent = await IntendAsync(Intent.Remove, w.Node, id, ct: ct);
            if (engine is not null)
            {
                if (hooks) await BeforeStopAsync(engine, w, ct);
                await engine.RemoveAsync(id, stopTimeout, ct);
            }
            await YieldAsync("removed-container", ct);
            RegistryTransaction? committed = null;
            await store.TransactAsync(async (tx, c) =>
            {
                var fence = await tx.GetAsync(Kinds.Allocations, w.Node, c);
                tx.Delete(Kinds.Workloads, id);
                tx.Put(Kinds.Allocations, NextFence(w.Node, fence));
                committed = tx;
                return true;
            }, ct: ct);
            if (engine is not null && w.Volumes?.Any(v => v.Kind == "volume") == true)
                await RemoveVolumesAsync(engine, w, committed!.CommitRevision, ct);
            await DoneAsync(intent);
            return new InstanceOutcome(w.Node, id, w.Name, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The record stays while its container may still run: registry and Docker keep agreeing.
            await DoneAsync(intent);
            return new InstanceOutcome(w.Node, id, w.Name, ex.Message);
        }
    }

    /// <summary>
    /// Removes a removed workload's named volumes, except those another record on the node mounts (a
    /// replace handed them on). After the record is gone: a crash in between leaves a volume, never loses one.
    /// </summary>
    private async Task RemoveVolumesAsync(DockerEngine engine, Workload w, long revision, CancellationToken ct)
    {
        var inUse = (await WorkloadsAsync(revision, w.Node, ct)).Where(o => o.Id != w.Id)
            .SelectMany(o => o.Volumes ?? []).Where(v => v.Kind == "volume").Select(v => v.Source).ToHashSet(StringComparer.Ordinal);
        foreach (var v in w.Volumes!.Where(v => v.Kind == "volume" && !inUse.Contains(v.Source)))
        {
            try
            {
                await engine.RemoveVolumeAsync(v.Source, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogWarning("removed {Name}, but not its volume {Volume}: {Error}", w.Name, v.Source, ex.Message);
            }
        }
    }
}
