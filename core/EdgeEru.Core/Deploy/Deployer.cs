using System.Security.Cryptography;
using EdgeEru.Core.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>
/// Orchestrates deploys and the life of workloads: plan on the registry's view (usage derived from
/// workload records), create each instance through its node's Docker engine, record it in a transaction
/// guarded by that node's allocation fence (docs/registry.md). No pod lock: when another writer changed
/// the node in between, the instance is checked again against fresh usage and either recorded or
/// removed, so memory and CPU pieces are never overcommitted.
/// </summary>
/// <param name="watcher">
/// Optional: a node's workloads are then read from the watcher's snapshot (once it has caught up with the
/// node's fence) instead of from etcd, so an allocation costs one key read however large the registry is.
/// </param>
public sealed class Deployer(RegistryStore store, Func<DockerEndpoint, DockerEngine> engines, ILogger<Deployer> log, RegistryWatcher? watcher = null)
{
    private const int Attempts = 16;
    private static readonly TimeSpan HookTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Test seam: where a deploy's instances are created (the node's Docker engine unless set).</summary>
    internal Func<Node, IInstanceHost>? Hosts { get; init; }

    /// <summary>
    /// Test seam: awaited at the allocation's yield points ("fence-read", "usage-read", "created",
    /// "before-commit") so that tests can force interleavings of concurrent deploys.
    /// </summary>
    internal Func<string, CancellationToken, Task>? Interleave { get; init; }

    private IInstanceHost Host(Node node) => Hosts?.Invoke(node) ?? engines(node.Endpoint);

    private Task YieldAsync(string point, CancellationToken ct) => Interleave?.Invoke(point, ct) ?? Task.CompletedTask;

    public async Task<DeployResult> DeployAsync(DeploySpec spec, CancellationToken ct = default) => await DeployAsync(spec, null, ct);

    public async Task<DeployResult> DeployAsync(DeploySpec spec, Action<DeployProgress>? progress, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (problems.Count > 0) return DeployResult.Of(new Refusal(RefusalKind.Invalid, "invalid deploy spec: " + string.Join("; ", problems)));
        var (candidates, usage, refusal) = await CandidatesAsync(spec, ct);
        if (refusal is not null) return DeployResult.Of(refusal);

        var placement = Scheduler.Place(usage, new PlacementRequest(spec.Resources, spec.Count, spec.Strategy, spec.PerNodeLimit));
        if (!placement.Ok)
            return DeployResult.Of(new Refusal(RefusalKind.NoCapacity, $"no capacity: {placement.Error}" +
                (placement.NodeReasons.Count > 0 ? " (" + string.Join("; ", placement.NodeReasons.Select(r => $"{r.Key}: {r.Value}")) + ")" : "")));
        progress?.Invoke(new DeployProgress(placement.PerNode.Where(p => p.Value > 0).ToDictionary(), null));

        var perNode = await Task.WhenAll(placement.PerNode.Where(p => p.Value > 0).Select(async p =>
        {
            var node = candidates[p.Key];
            using var engine = Host(node);
            var outcomes = new List<InstanceOutcome>();
            try
            {
                await engine.EnsureImageAsync(spec.Image, spec.ImageAuth, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                for (var i = 0; i < p.Value; i++) Report(outcomes, progress, new InstanceOutcome(node.Name, null, null, $"image {spec.Image}: {ex.Message}"));
                return outcomes;
            }
            for (var i = 0; i < p.Value; i++) Report(outcomes, progress, await OneAsync(engine, node, spec, ct));
            return outcomes;
        }));
        var instances = perNode.SelectMany(o => o).ToList();
        log.LogInformation("deploy {App}.{Entrypoint}: {Ok} of {Count} instances created", spec.App, spec.Entrypoint, instances.Count(i => i.Error is null), spec.Count);
        return new DeployResult(instances, null);
    }

    private static void Report(List<InstanceOutcome> outcomes, Action<DeployProgress>? progress, InstanceOutcome outcome)
    {
        outcomes.Add(outcome);
        progress?.Invoke(new DeployProgress(null, outcome));
    }

    /// <summary>A dry run: how many instances of <paramref name="spec"/> fit on each candidate node.</summary>
    public async Task<(IReadOnlyList<NodeFit> Nodes, Refusal? Refusal)> CapacityAsync(DeploySpec spec, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (problems.Count > 0) return ([], new Refusal(RefusalKind.Invalid, "invalid deploy spec: " + string.Join("; ", problems)));
        var (_, usage, refusal) = await CandidatesAsync(spec, ct);
        if (refusal is not null) return ([], refusal);
        return (usage.Select(n =>
        {
            var fit = Scheduler.Capacity(n, spec.Resources);
            if (spec.PerNodeLimit > 0) fit = Math.Min(fit, Math.Max(0, spec.PerNodeLimit - n.Existing));
            return new NodeFit(n.Name, fit, n.Existing, fit == 0 ? Scheduler.Reason(n, new PlacementRequest(spec.Resources, 1, spec.Strategy, spec.PerNodeLimit)) : null);
        }).OrderBy(f => f.Node, StringComparer.Ordinal).ToList(), null);
    }

    /// <summary>The nodes a spec may use (pod, names, labels, alive, schedulable) and their free resources.</summary>
    private async Task<(Dictionary<string, Node> Nodes, List<NodeResources> Usage, Refusal? Refusal)> CandidatesAsync(DeploySpec spec, CancellationToken ct)
    {
        var (nodes, _) = await store.ListAsync(Kinds.Nodes, ct: ct);
        var (alive, _) = await store.ListAsync(Kinds.NodeStatus, ct: ct);
        var aliveNames = alive.Select(s => s.Value.Node).ToHashSet(StringComparer.Ordinal);
        var inPod = nodes.Select(n => n.Value).Where(n => n.Pod == spec.Pod).ToDictionary(n => n.Name, StringComparer.Ordinal);
        if (inPod.Count == 0 && await store.GetAsync(Kinds.Pods, spec.Pod, ct) is null) return ([], [], new Refusal(RefusalKind.NotFound, $"pod {spec.Pod} does not exist"));
        foreach (var named in spec.Nodes)
        {
            if (!inPod.ContainsKey(named)) return ([], [], new Refusal(RefusalKind.NotFound, $"node {named} is not in pod {spec.Pod}"));
            // Named explicitly still means alive (ERU placed on dead named nodes), unless forced.
            if (!spec.Force && !aliveNames.Contains(named)) return ([], [], new Refusal(RefusalKind.Precondition, $"node {named} has no heartbeat: it is not alive (force to use it anyway)"));
        }
        var candidates = (spec.Nodes.Count > 0 ? spec.Nodes.Select(n => inPod[n]) : inPod.Values.Where(n => !n.Unschedulable && aliveNames.Contains(n.Name)))
            .Where(n => spec.NodeLabels.All(l => n.Labels.TryGetValue(l.Key, out var v) && v == l.Value))
            .Where(n => !spec.ExcludeNodeLabels.Any(l => n.Labels.TryGetValue(l.Key, out var v) && v == l.Value))
            .ToDictionary(n => n.Name, StringComparer.Ordinal);
        if (candidates.Count == 0) return ([], [], new Refusal(RefusalKind.Precondition, $"pod {spec.Pod} has no alive, schedulable node matching the filter"));

        // One view for every candidate: caught up with the newest fence among them, or one range read.
        var (fences, _) = await store.ListAsync(Kinds.Allocations, ct: ct);
        var newest = fences.Where(f => candidates.ContainsKey(f.Value.Node)).Select(f => f.ModRevision).DefaultIfEmpty(0).Max();
        var byNode = (await WorkloadsAsync(newest, null, ct)).ToLookup(w => w.Node, StringComparer.Ordinal);
        return (candidates, [.. candidates.Values.Select(n => NodeUsage.Free(n, byNode[n.Name], spec.App))], null);
    }

    /// <summary>
    /// Workload records as of (at least) <paramref name="fenceRevision"/>: the watcher's snapshot once it has
    /// caught up, else one range read (at <paramref name="readRevision"/> when given). Only
    /// <paramref name="node"/>'s when one is named.
    /// </summary>
    private async Task<IEnumerable<Workload>> WorkloadsAsync(long fenceRevision, string? node, CancellationToken ct, long readRevision = 0)
    {
        if (watcher is not null)
        {
            try
            {
                var snapshot = await watcher.WaitForRevisionAsync(fenceRevision, ct).WaitAsync(TimeSpan.FromSeconds(2), ct);
                return node is null ? [.. snapshot.Workloads.Select(w => w.Record).OfType<Workload>()] : [.. snapshot.WorkloadsOn(node)];
            }
            catch (TimeoutException)
            {
                log.LogWarning("registry watcher is behind revision {Revision}; reading workloads from etcd", fenceRevision);
            }
        }
        var (all, _) = await store.ListAsync(Kinds.Workloads, revision: readRevision, ct: ct);
        return [.. all.Select(w => w.Value).Where(w => node is null || w.Node == node)];
    }

    private async Task<InstanceOutcome> OneAsync(IInstanceHost engine, Node node, DeploySpec spec, CancellationToken ct)
    {
        var ident = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        var name = $"{spec.App}_{spec.Entrypoint}_{ident}";
        string? id = null;
        CpuPlan? plan = null;
        try
        {
            for (var attempt = 1; attempt <= Attempts; attempt++)
            {
                var tx = store.Begin();
                var fence = await tx.GetAsync(Kinds.Allocations, node.Name, ct); // the commit's only guard
                await YieldAsync("fence-read", ct);
                var onNode = (await WorkloadsAsync(fence?.ModRevision ?? 0, node.Name, ct, tx.ReadRevision)).Where(w => w.Id != id);
                await YieldAsync("usage-read", ct);
                var free = NodeUsage.Free(node, onNode, spec.App);
                if (Scheduler.Capacity(free, spec.Resources) < 1 || (plan is not null && !StillFits(plan, free)))
                {
                    if (id is null) return new InstanceOutcome(node.Name, null, name, "no room left on the node (taken meanwhile)");
                    // Our cores were taken meanwhile: start over with a fresh plan.
                    await engine.RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
                    (id, plan) = (null, null);
                    continue;
                }
                if (id is null)
                {
                    plan = spec.CpuBind ? CpuPlanner.Plan(free.FreePieces, free.CoreNuma, spec.Resources) : null;
                    id = await engine.CreateAndStartAsync(Container(spec, node, name, ident, plan), ct);
                    foreach (var hook in spec.AfterStart)
                    {
                        var r = await engine.ExecAsync(id, CommandLine.Split(hook), HookTimeout, ct);
                        if (r.ExitCode != 0) throw new InvalidOperationException($"after_start hook `{hook}` exited {r.ExitCode}: {r.Output}");
                    }
                    await YieldAsync("created", ct);
                }
                var state = await engine.InspectAsync(id, ct);
                await YieldAsync("before-commit", ct);
                tx.Put(Kinds.Workloads, Record(spec, node, id, name, ident, plan, state));
                tx.Put(Kinds.Allocations, Bump(node.Name, fence));
                if (await tx.CommitAsync(ct))
                    return new InstanceOutcome(node.Name, id, name, null) { Addresses = state?.Addresses ?? new Dictionary<string, string>() };
                await Task.Delay(Random.Shared.Next(5, 30), ct); // another writer changed the node: look again
            }
            throw new RegistryConflictException(Attempts);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Roll back only this instance.
            if (id is not null) await engine.RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
            log.LogWarning("deploy {Name} on {Node} failed: {Error}", name, node.Name, ex.Message);
            return new InstanceOutcome(node.Name, null, name, ex.Message);
        }
    }

    private static NodeAllocation Bump(string node, Versioned<NodeAllocation>? fence) =>
        new() { Node = node, Generation = (fence?.Value.Generation ?? 0) + 1, ChangedAt = DateTimeOffset.UtcNow };

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

    /// <summary>Runs a workload's before_stop hooks; a failing one is logged, never keeps the container alive.</summary>
    private async Task BeforeStopAsync(DockerEngine engine, Workload w, CancellationToken ct)
    {
        foreach (var hook in w.BeforeStop ?? [])
        {
            try
            {
                var r = await engine.ExecAsync(w.Id, CommandLine.Split(hook), HookTimeout, ct);
                if (r.ExitCode != 0) log.LogWarning("before_stop hook `{Hook}` of {Name} exited {Code}: {Output}", hook, w.Name, r.ExitCode, r.Output);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A hook must not keep a container alive (it may be stopped or gone already).
                log.LogWarning("before_stop hook `{Hook}` of {Name} failed: {Error}", hook, w.Name, ex.Message);
            }
        }
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
                tx.Put(Kinds.Allocations, Bump(w.Node, fence));
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

    /// <summary>Starts, stops or restarts workloads' containers; their records and allocations stay.</summary>
    public async Task<IReadOnlyList<InstanceOutcome>> ControlAsync(IEnumerable<string> workloadIds, ControlAction action, TimeSpan stopTimeout,
        Action<InstanceOutcome>? progress = null, CancellationToken ct = default)
    {
        var outcomes = new List<InstanceOutcome>();
        foreach (var id in workloadIds)
        {
            var record = await store.GetAsync(Kinds.Workloads, id, ct);
            InstanceOutcome outcome;
            if (record is null) outcome = new InstanceOutcome("", id, null, $"no workload {id}");
            else if (await store.GetAsync(Kinds.Nodes, record.Value.Node, ct) is not { } node) outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, $"node {record.Value.Node} is gone");
            else
            {
                try
                {
                    using var engine = engines(node.Value.Endpoint);
                    switch (action)
                    {
                        case ControlAction.Start: await engine.StartAsync(id, ct); break;
                        case ControlAction.Stop: await engine.StopAsync(id, stopTimeout, ct); break;
                        case ControlAction.Restart: await engine.RestartAsync(id, stopTimeout, ct); break;
                        default: throw new ArgumentOutOfRangeException(nameof(action), action, "start, stop or restart");
                    }
                    outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, null);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, ex.Message);
                }
            }
            outcomes.Add(outcome);
            progress?.Invoke(outcome);
        }
        return outcomes;
    }

    /// <summary>
    /// Rolling replace of app.entrypoint's instances (those with all <see cref="ReplaceOptions.OnlyTags"/>)
    /// by <paramref name="spec"/>: per batch, one new instance per old one (on the old one's node when it
    /// fits, else wherever the strategy puts it); each new one must be reported healthy by its agent before
    /// the batch's old ones are removed. A failed batch removes its new instances and stops the rollout,
    /// leaving the old ones serving. Nothing is ever unavailable: new ones come up before old ones go.
    /// </summary>
    public async Task<DeployResult> ReplaceAsync(DeploySpec spec, ReplaceOptions options, Action<DeployProgress>? progress = null, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (options.BatchSize < 1) problems = [.. problems, $"batch size {options.BatchSize} must be at least 1"];
        if (options.MaxUnavailable < 0) problems = [.. problems, $"max unavailable {options.MaxUnavailable} must not be negative"];
        if (problems.Count > 0) return DeployResult.Of(new Refusal(RefusalKind.Invalid, "invalid replace spec: " + string.Join("; ", problems)));
        var (all, _) = await store.ListAsync(Kinds.Workloads, ct: ct);
        var olds = all.Select(w => w.Value)
            .Where(w => w.App == spec.App && w.Entrypoint == spec.Entrypoint && w.Pod == spec.Pod && options.OnlyTags.All(t => w.Tags.Contains(t)))
            .OrderBy(w => w.Node, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList();
        if (olds.Count == 0) return DeployResult.Of(new Refusal(RefusalKind.NotFound, $"no instances of {spec.Entrypoint}.{spec.App} in pod {spec.Pod} to replace"));

        var results = new List<InstanceOutcome>();
        foreach (var batch in olds.Chunk(options.BatchSize))
        {
            progress?.Invoke(new DeployProgress(null, null, $"batch: replacing {string.Join(", ", batch.Select(b => b.Name))}"));
            var fresh = new List<InstanceOutcome>();
            var parked = new List<(Workload Old, Dictionary<string, string> Addresses)>();
            var takenDown = new HashSet<string>(StringComparer.Ordinal); // old ones removed before their replacement (max unavailable)
            foreach (var old in batch)
            {
                DeployResult r;
                if (options.KeepIp)
                {
                    // The old one lets go of its addresses first; the new one takes them on the same node.
                    var addresses = spec.Networks.Keys.Where(n => old.Networks.TryGetValue(n, out var ip) && ip.Length > 0).ToDictionary(n => n, n => old.Networks[n]);
                    if (addresses.Count == 0) r = DeployResult.Of(new Refusal(RefusalKind.Precondition, $"keep-ip: {old.Name} has no address on the new spec's networks ({string.Join(", ", spec.Networks.Keys)})"));
                    else if (await ParkAsync(old, addresses, options.StopTimeout, ct) is { } why) r = DeployResult.Of(new Refusal(RefusalKind.Precondition, $"keep-ip: {old.Name}: {why}"));
                    else
                    {
                        parked.Add((old, addresses));
                        progress?.Invoke(new DeployProgress(null, null, $"stopped {old.Name} and released {string.Join(", ", addresses.Values)}"));
                        var networks = spec.Networks.ToDictionary();
                        foreach (var (n, ip) in addresses) networks[n] = ip;
                        r = await DeployAsync(spec with { Count = 1, Nodes = [old.Node], Strategy = Strategy.Auto, PerNodeLimit = 0, Force = false, Networks = networks }, ct);
                    }
                }
                else
                {
                    var onSameNode = await DeployAsync(spec with { Count = 1, Nodes = [old.Node], Strategy = Strategy.Auto, PerNodeLimit = 0, Force = false }, ct);
                    r = onSameNode.Error is null ? onSameNode : await DeployAsync(spec with { Count = 1 }, ct);
                    if (r.Refused == RefusalKind.NoCapacity && takenDown.Count < options.MaxUnavailable)
                    {
                        // No room anywhere to bring the new one up beside the old: the old one goes first, as
                        // max-unavailable allows; it stays gone if its replacement fails.
                        foreach (var removed in await RemoveAsync([old.Id], options.StopTimeout, ct))
                            progress?.Invoke(new DeployProgress(null, null, removed.Error is null ? $"no room to surge: removed {removed.Name} first" : $"could not remove {removed.Name}: {removed.Error}"));
                        takenDown.Add(old.Id);
                        onSameNode = await DeployAsync(spec with { Count = 1, Nodes = [old.Node], Strategy = Strategy.Auto, PerNodeLimit = 0, Force = false }, ct);
                        r = onSameNode.Error is null ? onSameNode : await DeployAsync(spec with { Count = 1 }, ct);
                    }
                }
                var outcome = r.Instances.Count > 0 ? r.Instances[0] : new InstanceOutcome(old.Node, null, null, r.Error);
                fresh.Add(outcome);
                progress?.Invoke(new DeployProgress(null, outcome));
                if (outcome.Error is not null) break; // the rest of the batch stays untouched
            }
            string? failure = fresh.FirstOrDefault(f => f.Error is not null)?.Error;
            if (failure is null)
            {
                progress?.Invoke(new DeployProgress(null, null, $"waiting for {fresh.Count} new instance(s) to be reported healthy"));
                var healthy = await Task.WhenAll(fresh.Select(f => WaitHealthyAsync(f.WorkloadId!, options.HealthTimeout, ct)));
                if (healthy.Any(h => h is not null)) failure = healthy.First(h => h is not null);
            }
            if (failure is not null)
            {
                await RemoveAsync(fresh.Where(f => f.WorkloadId is not null).Select(f => f.WorkloadId!), TimeSpan.Zero, ct);
                foreach (var (old, addresses) in parked)
                {
                    var why = await UnparkAsync(old, addresses, CancellationToken.None);
                    progress?.Invoke(new DeployProgress(null, null, why is null ? $"restarted {old.Name} with {string.Join(", ", addresses.Values)}" : $"could not restart {old.Name}: {why}"));
                }
                results.AddRange(fresh.Select(f => f with { Error = f.Error ?? "rolled back: " + failure }));
                log.LogWarning("replace {App}.{Entrypoint} stopped: {Failure}; the old instances keep serving ({TakenDown} taken down first)", spec.App, spec.Entrypoint, failure, takenDown.Count);
                return new DeployResult(results, $"replace stopped after {results.Count(r => r.Error is null)} new instance(s): {failure}"
                    + (takenDown.Count > 0 ? $"; {takenDown.Count} old instance(s) were removed first (max unavailable) and stay removed" : ""));
            }
            results.AddRange(fresh);
            // Parked old ones ran their before_stop hooks when they were stopped.
            foreach (var removed in await RemoveAsync(batch.Where(b => !takenDown.Contains(b.Id)).Select(b => b.Id), options.StopTimeout, null, hooks: !options.KeepIp, ct))
                progress?.Invoke(new DeployProgress(null, null, removed.Error is null ? $"removed {removed.Name}" : $"could not remove {removed.Name}: {removed.Error}"));
        }
        return new DeployResult(results, null);
    }

    /// <summary>Keep-ip: runs the old one's before_stop hooks, stops it and detaches it from the networks of <paramref name="addresses"/>; null when done, else why not.</summary>
    private async Task<string?> ParkAsync(Workload old, IReadOnlyDictionary<string, string> addresses, TimeSpan stopTimeout, CancellationToken ct)
    {
        if (await store.GetAsync(Kinds.Nodes, old.Node, ct) is not { } node) return $"node {old.Node} is gone";
        try
        {
            using var engine = engines(node.Value.Endpoint);
            await BeforeStopAsync(engine, old, ct);
            await engine.StopAsync(old.Id, stopTimeout, ct);
            foreach (var n in addresses.Keys) await engine.DisconnectAsync(old.Id, n, ct);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await UnparkAsync(old, addresses, CancellationToken.None); // whatever was done: it serves again
            return ex.Message;
        }
    }

    /// <summary>Keep-ip rollback: the old one gets its addresses back and starts again; null when it runs.</summary>
    private async Task<string?> UnparkAsync(Workload old, IReadOnlyDictionary<string, string> addresses, CancellationToken ct)
    {
        try
        {
            if (await store.GetAsync(Kinds.Nodes, old.Node, ct) is not { } node) return $"node {old.Node} is gone";
            using var engine = engines(node.Value.Endpoint);
            var state = await engine.InspectAsync(old.Id, ct);
            if (state is null) return "its container is gone";
            foreach (var (n, ip) in addresses.Where(a => !state.Addresses.ContainsKey(a.Key))) await engine.ConnectAsync(old.Id, n, ip, ct);
            if (!state.Running) await engine.StartAsync(old.Id, ct);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError("keep-ip rollback: could not restart {Name}: {Error}", old.Name, ex.Message);
            return ex.Message;
        }
    }

    /// <summary>
    /// Changes the resources of existing workloads in place, each on its own node: re-planned with the
    /// workload's own allocation counted as free (bound cores kept when still valid), recorded under the
    /// node's allocation fence, then applied with docker update. A workload that does not fit is refused
    /// with the reason and stays as it was; when Docker refuses the update, the record is put back.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> ReallocAsync(IEnumerable<string> workloadIds, ReallocSpec spec, Action<InstanceOutcome>? progress = null, CancellationToken ct = default)
    {
        var outcomes = new List<InstanceOutcome>();
        var problems = spec.Problems();
        foreach (var id in workloadIds)
        {
            var outcome = problems.Count > 0 ? new InstanceOutcome("", id, null, "invalid realloc: " + string.Join("; ", problems)) : await ReallocOneAsync(id, spec, ct);
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
        for (var attempt = 1; ; attempt++)
        {
            var tx = store.Begin();
            var fence = await tx.GetAsync(Kinds.Allocations, node.Name, ct);
            await YieldAsync("realloc-fence-read", ct);
            var self = await tx.GetAsync(Kinds.Workloads, id, ct);
            if (self is null) return new InstanceOutcome(node.Name, id, record.Value.Name, $"no workload {id} (removed meanwhile)");
            var others = (await WorkloadsAsync(fence?.ModRevision ?? 0, node.Name, ct, tx.ReadRevision)).Where(w => w.Id != id);
            var (allocation, reason) = Realloc.Plan(NodeUsage.Free(node, others, self.Value.App), self.Value.Resources, spec);
            if (allocation is null)
                return new InstanceOutcome(node.Name, id, self.Value.Name, $"does not fit on {node.Name}: {reason}; it keeps its resources") { Resources = self.Value.Resources };
            tx.Put(Kinds.Workloads, self.Value with { Resources = allocation });
            tx.Put(Kinds.Allocations, Bump(node.Name, fence));
            await YieldAsync("realloc-before-commit", ct);
            if (await tx.CommitAsync(ct))
            {
                (before, after) = (self.Value, allocation);
                break;
            }
            if (attempt >= Attempts) return new InstanceOutcome(node.Name, id, self.Value.Name, new RegistryConflictException(Attempts).Message);
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
                    tx.Put(Kinds.Allocations, Bump(node.Name, fence));
                }
                return true;
            }, ct: CancellationToken.None);
            log.LogWarning("realloc {Name}: docker update failed: {Error}", before.Name, ex.Message);
            return new InstanceOutcome(node.Name, id, before.Name, $"docker update failed: {ex.Message}; it keeps its resources") { Resources = before.Resources };
        }
        log.LogInformation("realloc {Name} on {Node}: memory {Memory}, cpu {Cpu}{Bound}", before.Name, node.Name, after.MemoryRequestBytes, after.CpuRequest,
            after.CpuBind.Length > 0 ? " bound to " + DockerEngine.Cpuset(after.CpuBind.Select(b => b.Core)) : "");
        return new InstanceOutcome(node.Name, id, before.Name, null) { Resources = after };
    }

    /// <summary>Null once the agent reports the workload running and healthy; else why not in time.</summary>
    private async Task<string?> WaitHealthyAsync(string id, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        string? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var status = await store.GetAsync(Kinds.WorkloadStatus, id, ct);
            if (status is { Value: { Running: true, Healthy: true } }) return null;
            last = status?.Value.Reason ?? (status is null ? "no status from the agent yet" : "not running");
            await Task.Delay(200, ct);
        }
        return $"{id[..Math.Min(12, id.Length)]} not healthy within {timeout.TotalSeconds:0} s ({last})";
    }

    private static bool StillFits(CpuPlan plan, NodeResources free) => plan.Cores.All(c => c.Core < free.FreePieces.Length && free.FreePieces[c.Core] >= c.Pieces);

    private static ContainerSpec Container(DeploySpec spec, Node node, string name, string ident, CpuPlan? plan) => new()
    {
        Name = name,
        Image = spec.Image,
        Command = spec.Command,
        Env = spec.Env,
        User = spec.User,
        WorkingDir = spec.WorkingDir,
        Restart = spec.Restart,
        Labels = new Dictionary<string, string>
        {
            [DockerEngine.AppLabel] = spec.App, [DockerEngine.EntrypointLabel] = spec.Entrypoint,
            [DockerEngine.IdentLabel] = ident, [DockerEngine.NodeLabel] = node.Name,
        },
        Networks = spec.Networks,
        MemoryLimit = spec.MemoryLimit,
        CpuQuota = plan is null ? spec.Cpu : 0,
        Cpuset = plan is null ? null : DockerEngine.Cpuset(plan.Cores.Select(c => c.Core)),
        CpusetMems = plan?.Numa,
    };

    private static Workload Record(DeploySpec spec, Node node, string id, string name, string ident, CpuPlan? plan, ContainerState? state) => new()
    {
        Id = id,
        Name = name,
        App = spec.App,
        Entrypoint = spec.Entrypoint,
        Ident = ident,
        Pod = node.Pod,
        Node = node.Name,
        Image = spec.Image,
        Tags = [.. spec.Tags],
        Labels = StringMap.From(spec.Labels),
        Networks = StringMap.From(spec.Networks.Select(n => new KeyValuePair<string, string>(n.Key,
            state?.Addresses.TryGetValue(n.Key, out var ip) == true ? ip : n.Value))),
        Ports = [.. spec.Ports],
        Resources = new ResourceAllocation
        {
            MemoryRequestBytes = spec.MemoryRequest,
            MemoryLimitBytes = spec.MemoryLimit,
            CpuRequest = spec.Cpu,
            CpuLimit = spec.Cpu,
            CpuBind = plan is null ? [] : [.. plan.Cores.Select(c => new CpuBinding { Core = c.Core, Pieces = c.Pieces })],
            NumaNode = plan?.Numa,
        },
        Healthcheck = spec.Healthcheck,
        BeforeStop = spec.BeforeStop.Count > 0 ? [.. spec.BeforeStop] : null,
        CreatedAt = DateTimeOffset.UtcNow,
    };
}

public enum ControlAction
{
    Start,
    Stop,
    Restart,
}

public sealed record ReplaceOptions
{
    public int BatchSize { get; init; } = 1;
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public IReadOnlyList<string> OnlyTags { get; init; } = [];

    /// <summary>
    /// Old instances of a batch that may be removed before their replacement is healthy, when there is no
    /// room anywhere to start the new one beside them (0: new ones always come up first, or the rollout stops).
    /// </summary>
    public int MaxUnavailable { get; init; }

    /// <summary>
    /// Each new instance takes over its old one's addresses (fixed IPs) on the same node: the old one is
    /// stopped and detached first, the new one created with those addresses; if the new one fails, the old
    /// one gets them back and is started again.
    /// </summary>
    public bool KeepIp { get; init; }
}
