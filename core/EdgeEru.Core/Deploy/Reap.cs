using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>What one reaping round did; <see cref="Notes"/> says it in words, one line per thing.</summary>
public sealed record ReapReport(int Intents, int Containers, int Records, int Volumes, IReadOnlyList<string> Notes)
{
    public int Total => Intents + Containers + Records + Volumes;
}

/// <summary>What the reaper remembers between rounds: records seen without their container once already.</summary>
public sealed class ReapMemory
{
    internal HashSet<string> MissingContainers { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Reap: Docker and the registry agree again after a Core crash. First the write-ahead log: an intent whose
/// replica is gone (or that is stale) is finished or undone. Then a sweep by labels, for what no intent
/// covers: a container of this registry without a record, older than the grace; a record whose container is
/// gone, seen twice in a row; a volume of this registry nothing mounts or is about to.
/// </summary>
public sealed partial class Deployer
{
    /// <summary>An intent older than this belongs to an operation that died even if its replica lives (a job's may run long).</summary>
    private static readonly TimeSpan StaleIntent = TimeSpan.FromMinutes(30);

    public async Task<ReapReport> ReapAsync(ReapMemory memory, TimeSpan grace, CancellationToken ct = default)
    {
        var notes = new List<string>();
        var live = (await store.ListAsync(Kinds.Cores, ct: ct)).Items.Select(c => c.Value.Id).ToHashSet(StringComparer.Ordinal);
        var intents = (await store.ListAsync(Kinds.Intents, ct: ct)).Items.Select(i => i.Value).ToList();
        var handled = 0;
        foreach (var intent in intents.Where(i =>
            !live.Contains(i.Core) || (i.Op != Intent.Job && DateTimeOffset.UtcNow - i.CreatedAt > StaleIntent)))
        {
            try
            {
                notes.Add($"intent {intent.Id} of core {intent.Core} ({intent.Op} {intent.Target} on {intent.Node}): " +
                    $"{await FinishAsync(intent, ct)}");
                await store.DeleteAsync(Kinds.Intents, intent.Id, ct);
                handled++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                notes.Add($"intent {intent.Id} ({intent.Op} {intent.Target} on {intent.Node}): {ex.Message}; tried again next round");
            }
        }
        var pending = (await store.ListAsync(Kinds.Intents, ct: ct)).Items.Select(i => i.Value).ToList();
        var (containers, records, volumes) = await SweepAsync(memory, pending, grace, notes, ct);
        var report = new ReapReport(handled, containers, records, volumes, notes);
        if (report.Total > 0)
            foreach (var note in notes) log.LogWarning("reaper: {Note}", note);
        return report;
    }

    /// <summary>Finishes or undoes one orphaned operation; says what it did.</summary>
    private async Task<string> FinishAsync(Intent intent, CancellationToken ct)
    {
        var node = await store.GetAsync(Kinds.Nodes, intent.Node, ct);
        using var engine = node is null ? null : engines(node.Value.Endpoint);
        var target = intent.Op == Intent.Create ? null : await store.GetAsync(Kinds.Workloads, intent.Target, ct);
        switch (intent.Op)
        {
            case Intent.Create:
                if ((await WorkloadsAsync(0, intent.Node, ct)).Any(w => w.Ident == intent.Ident)) return "it was recorded: nothing to undo";
                if (engine is null) return $"node {intent.Node} is gone";
                var removed = await engine.RemoveAsync(intent.Target, TimeSpan.Zero, ct);
                var volumes = await RemoveVolumesOfAsync(engine, intent.Ident, ct);
                return $"never recorded: {(removed ? "its container" : "no container")} and {volumes} volume(s) removed";
            case Intent.Remove:
                if (target is null)
                {
                    if (engine is not null) await engine.RemoveAsync(intent.Target, TimeSpan.Zero, ct);
                    return "its record was gone: the container is removed too";
                }
                return Said(await RemoveOneAsync(intent.Target, TimeSpan.Zero, ct, hooks: false), "the removal is finished");
            case Intent.Park:
                if (target is null) return "the old instance is gone: the replace had finished";
                var successor = await SuccessorAsync(intent, target.Value, ct);
                var status = successor is null ? null : await store.GetAsync(Kinds.WorkloadStatus, successor.Id, ct);
                if (successor is not null && status?.Value is { Running: true, Healthy: true })
                    return Said(await RemoveOneAsync(target.Value.Id, TimeSpan.Zero, ct, hooks: false),
                        $"its successor {successor.Name} is live: the old one is removed");
                if (successor is not null) await RemoveOneAsync(successor.Id, TimeSpan.Zero, ct, hooks: false);
                var why = await UnparkAsync(target.Value, intent.Addresses?.ToDictionary(a => a.Key, a => a.Value) ?? [], ct);
                return why is null
                    ? $"rolled back: {(successor is null ? "" : $"{successor.Name} removed, ")}{target.Value.Name} runs again"
                    : throw new InvalidOperationException($"could not restart {target.Value.Name}: {why}");
            case Intent.Realloc:
                if (target is null || engine is null) return "the workload is gone";
                var r = target.Value.Resources;
                var bound = r.CpuBind.Length > 0;
                await engine.UpdateResourcesAsync(target.Value.Id, r.MemoryLimitBytes, bound ? 0 : r.CpuLimit,
                    bound ? DockerEngine.Cpuset(r.CpuBind.Select(b => b.Core)) : null, r.NumaNode, ct);
                return "the recorded resources are applied";
            case Intent.Job:
                if (target is null) return "the job is gone";
                if (engine is not null) await engine.KillAsync(intent.Target, ct: ct);
                return Said(await RemoveOneAsync(intent.Target, TimeSpan.Zero, ct, hooks: false),
                    "its runner died: the job is killed and removed");
            default:
                return $"unknown op {intent.Op}: left as it is";
        }
    }

    /// <summary>
    /// A parked instance's successor: by the ident the intent learnt, else (a crash before it learnt it) the record
    /// made since on the node that took the old one's volumes or addresses.
    /// </summary>
    private async Task<Workload?> SuccessorAsync(Intent intent, Workload old, CancellationToken ct)
    {
        var onNode = (await WorkloadsAsync(0, intent.Node, ct)).Where(w => w.Id != old.Id).ToList();
        if (intent.Ident is not null) return onNode.FirstOrDefault(w => w.Ident == intent.Ident);
        var volumes = (old.Volumes ?? []).Where(v => v.Kind == "volume").Select(v => v.Source).ToHashSet(StringComparer.Ordinal);
        var addresses = intent.Addresses?.Select(a => DeploySpec.SplitAddresses(a.Value).V4).ToHashSet(StringComparer.Ordinal) ?? [];
        return onNode.Where(w => w.App == old.App && w.Entrypoint == old.Entrypoint && w.CreatedAt >= intent.CreatedAt)
            .FirstOrDefault(w => (w.Volumes ?? []).Any(v => volumes.Contains(v.Source))
                || w.Networks.Any(n => addresses.Contains(n.Value)));
    }

    private static string Said(InstanceOutcome outcome, string done) =>
        outcome.Error is null ? done : throw new InvalidOperationException(outcome.Error);

    /// <summary>The sweep by labels, per node whose engine answers.</summary>
    private async Task<(int Containers, int Records, int Volumes)> SweepAsync(ReapMemory memory, List<Intent> pending, TimeSpan grace,
        List<string> notes, CancellationToken ct)
    {
        var identity = await IdentityAsync(ct);
        var (nodes, _) = await store.ListAsync(Kinds.Nodes, ct: ct);
        var records = (await WorkloadsAsync(0, null, ct)).ToLookup(w => w.Node, StringComparer.Ordinal);
        var busyTargets = pending.Select(i => i.Target).ToHashSet(StringComparer.Ordinal);
        var busyIdents = pending.Where(i => i.Ident is not null).Select(i => i.Ident!).ToHashSet(StringComparer.Ordinal);
        var missingNow = new HashSet<string>(StringComparer.Ordinal);
        int containers = 0, gone = 0, volumes = 0;
        var old = DateTimeOffset.UtcNow - grace;
        foreach (var node in nodes.Select(n => n.Value))
        {
            using var engine = engines(node.Endpoint);
            try
            {
                var onNode = records[node.Name].ToList();
                var ids = onNode.Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
                var idents = onNode.Select(w => w.Ident).ToHashSet(StringComparer.Ordinal);
                // Every EdgeEru container, ours or not: a record's container is looked for among all of them.
                var all = await engine.ContainersWithLabelAsync(DockerEngine.AppLabel, ct: ct);
                foreach (var c in all.Where(c => c.Labels.GetValueOrDefault(DockerEngine.RegistryLabel) == identity && !ids.Contains(c.Id)))
                {
                    var ident = c.Labels.GetValueOrDefault(DockerEngine.IdentLabel) ?? "";
                    if (busyTargets.Contains(c.Name) || busyIdents.Contains(ident) || c.Created > old) continue;
                    await engine.RemoveAsync(c.Id, TimeSpan.Zero, ct);
                    notes.Add($"container {c.Name} on {node.Name} had no record: removed");
                    containers++;
                }
                var present = all.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
                foreach (var w in onNode.Where(w => !present.Contains(w.Id) && !busyTargets.Contains(w.Id)))
                {
                    // Seen twice: a removal that lost its record delete, or a container removed by hand.
                    if (!memory.MissingContainers.Contains(w.Id) || await engine.InspectAsync(w.Id, ct) is not null)
                    {
                        missingNow.Add(w.Id);
                        continue;
                    }
                    Said(await RemoveOneAsync(w.Id, TimeSpan.Zero, ct, hooks: false), "");
                    notes.Add($"record {w.Name} on {node.Name} had no container: deleted");
                    gone++;
                }
                var inUse = onNode.SelectMany(w => w.Volumes ?? []).Select(v => v.Source).ToHashSet(StringComparer.Ordinal);
                var containerIdents = all.Select(c => c.Labels.GetValueOrDefault(DockerEngine.IdentLabel)).OfType<string>()
                    .ToHashSet(StringComparer.Ordinal);
                foreach (var v in await engine.VolumesWithLabelAsync(DockerEngine.RegistryLabel, identity, ct))
                {
                    var ident = v.Labels.GetValueOrDefault(DockerEngine.IdentLabel) ?? "";
                    if (inUse.Contains(v.Name) || idents.Contains(ident) || busyIdents.Contains(ident) || containerIdents.Contains(ident)
                        || v.Created > old)
                        continue;
                    if (await engine.RemoveVolumeAsync(v.Name, ct)) volumes++;
                    notes.Add($"volume {v.Name} on {node.Name} belonged to nothing: removed");
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                notes.Add($"node {node.Name}: {DockerEngine.Explain(ex, node.Endpoint)}; swept next round");
            }
        }
        memory.MissingContainers = missingNow;
        return (containers, gone, volumes);
    }

    /// <summary>Removes this registry's volumes made for <paramref name="ident"/> (a create that never got recorded).</summary>
    private async Task<int> RemoveVolumesOfAsync(DockerEngine engine, string? ident, CancellationToken ct)
    {
        if (ident is null) return 0;
        var removed = 0;
        foreach (var v in await engine.VolumesWithLabelAsync(DockerEngine.IdentLabel, ident, ct))
            if (v.Labels.GetValueOrDefault(DockerEngine.RegistryLabel) == await IdentityAsync(ct)
                && await engine.RemoveVolumeAsync(v.Name, ct))
                removed++;
        return removed;
    }
}
