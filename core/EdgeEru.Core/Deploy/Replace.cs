using EdgeEru.Core.Scheduling;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>Replace: a rolling replacement, new instances healthy before old ones go.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Rolling replace of app.entrypoint's instances (those with all <see cref="ReplaceOptions.OnlyTags"/>)
    /// by <paramref name="spec"/>: per batch, one new instance per old one (on the old one's node when it
    /// fits, else wherever the strategy puts it); each new one must be reported healthy by its agent before
    /// the batch's old ones are removed. A failed batch removes its new instances and stops the rollout,
    /// leaving the old ones serving. Nothing is ever unavailable: new ones come up before old ones go.
    /// </summary>
    public async Task<DeployResult> ReplaceAsync(
        DeploySpec spec, ReplaceOptions options, Action<DeployProgress>? progress = null, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (options.BatchSize < 1) problems = [.. problems, $"batch size {options.BatchSize} must be at least 1"];
        if (options.MaxUnavailable < 0) problems = [.. problems, $"max unavailable {options.MaxUnavailable} must not be negative"];
        if (problems.Count > 0)
            return DeployResult.Of(new Refusal(RefusalKind.Invalid, "invalid replace spec: " + string.Join("; ", problems)));
        var (all, _) = await store.ListAsync(Kinds.Workloads, ct: ct);
        var olds = all.Select(w => w.Value)
            .Where(w => w.App == spec.App && w.Entrypoint == spec.Entrypoint && w.Pod == spec.Pod
                && options.OnlyTags.All(t => w.Tags.Contains(t)))
            .OrderBy(w => w.Node, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList();
        if (olds.Count == 0)
            return DeployResult.Of(new Refusal(RefusalKind.NotFound,
                $"no instances of {spec.Entrypoint}.{spec.App} in pod {spec.Pod} to replace"));

        var results = new List<InstanceOutcome>();
        foreach (var batch in olds.Chunk(options.BatchSize))
        {
            progress?.Invoke(new DeployProgress(null, null, $"batch: replacing {string.Join(", ", batch.Select(b => b.Name))}"));
            var fresh = new List<InstanceOutcome>();
            var parked = new List<(Workload Old, Dictionary<string, string> Addresses, Intent? Intent)>();
            var takenDown = new HashSet<string>(StringComparer.Ordinal); // old ones removed before their replacement (max unavailable)
            foreach (var old in batch)
            {
                // Named volumes pin an instance to its node and must not be written by two at once: like
                // keep-ip, the old one stops first and its successor takes over its volumes in place.
                var r = options.KeepIp || old.Volumes?.Any(v => v.Kind == "volume") == true
                    ? await SucceedInPlaceAsync(old, spec, options, parked, progress, ct)
                    : await SurgeAsync(old, spec, options, takenDown, progress, ct);
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
                foreach (var (old, addresses, intent) in parked)
                {
                    var why = await UnparkAsync(old, addresses, CancellationToken.None);
                    await DoneAsync(intent);
                    progress?.Invoke(new DeployProgress(null, null, why is null
                        ? $"restarted {old.Name}" + (addresses.Count > 0 ? $" with {string.Join(", ", addresses.Values)}" : "")
                        : $"could not restart {old.Name}: {why}"));
                }
                results.AddRange(fresh.Select(f => f with { Error = f.Error ?? "rolled back: " + failure }));
                log.LogWarning(
                    "replace {App}.{Entrypoint} stopped: {Failure}; the old instances keep serving ({TakenDown} taken down first)",
                    spec.App, spec.Entrypoint, failure, takenDown.Count);
                return new DeployResult(results, $"replace stopped after {results.Count(r => r.Error is null)} new instance(s): {failure}"
                    + (takenDown.Count > 0
                        ? $"; {takenDown.Count} old instance(s) were removed first (max unavailable) and stay removed"
                        : ""));
            }
            results.AddRange(fresh);
            // Parked old ones ran their before_stop hooks when they were stopped.
            var wasParked = parked.Select(p => p.Old.Id).ToHashSet(StringComparer.Ordinal);
            var removals = (await RemoveAsync(batch.Where(b => wasParked.Contains(b.Id)).Select(b => b.Id), options.StopTimeout, null,
                    hooks: false, ct))
                .Concat(await RemoveAsync(batch.Where(b => !wasParked.Contains(b.Id) && !takenDown.Contains(b.Id)).Select(b => b.Id),
                    options.StopTimeout, ct));
            foreach (var removed in removals)
                progress?.Invoke(new DeployProgress(null, null,
                    removed.Error is null ? $"removed {removed.Name}" : $"could not remove {removed.Name}: {removed.Error}"));
            foreach (var (_, _, intent) in parked) await DoneAsync(intent);
        }
        return new DeployResult(results, null);
    }

    /// <summary>
    /// The new instance comes up beside the old one (its node first, else anywhere); when there is no room
    /// anywhere and max-unavailable allows, the old one goes first.
    /// </summary>
    private async Task<DeployResult> SurgeAsync(Workload old, DeploySpec spec, ReplaceOptions options, HashSet<string> takenDown,
        Action<DeployProgress>? progress, CancellationToken ct)
    {
        var onSameNode = await DeployAsync(OneOn(spec, old.Node), ct);
        var r = onSameNode.Error is null ? onSameNode : await DeployAsync(spec with { Count = 1 }, ct);
        if (r.Refused != RefusalKind.NoCapacity || takenDown.Count >= options.MaxUnavailable) return r;
        // No room anywhere to bring the new one up beside the old: the old one goes first, as
        // max-unavailable allows; it stays gone if its replacement fails.
        foreach (var removed in await RemoveAsync([old.Id], options.StopTimeout, ct))
            progress?.Invoke(new DeployProgress(null, null, removed.Error is null
                ? $"no room to surge: removed {removed.Name} first" : $"could not remove {removed.Name}: {removed.Error}"));
        takenDown.Add(old.Id);
        onSameNode = await DeployAsync(OneOn(spec, old.Node), ct);
        return onSameNode.Error is null ? onSameNode : await DeployAsync(spec with { Count = 1 }, ct);
    }

    /// <summary>
    /// Stop-first on the same node (keep-ip, named volumes): the old one runs its before_stop hooks, stops and
    /// lets go of its addresses; its successor takes them and its volumes, using its room. A replacement that
    /// would lose volume data (a volume the new spec drops, or no way back onto the node) needs allow-data-loss.
    /// </summary>
    private async Task<DeployResult> SucceedInPlaceAsync(Workload old, DeploySpec spec, ReplaceOptions options,
        List<(Workload Old, Dictionary<string, string> Addresses, Intent? Intent)> parked, Action<DeployProgress>? progress,
        CancellationToken ct)
    {
        var volumes = (old.Volumes ?? []).Where(v => v.Kind == "volume" && v.Name is not null).ToList();
        var kept = volumes.Where(v => spec.Volumes.Any(n => n.IsNamed && n.Source == v.Name)).ToDictionary(v => v.Name!, v => v.Source);
        var dropped = volumes.Where(v => !kept.ContainsKey(v.Name!)).Select(v => v.Name!).ToList();
        if (dropped.Count > 0 && !options.AllowDataLoss)
            return Refused(RefusalKind.Precondition,
                $"replacing {old.Name} would lose the data of its volume(s) {string.Join(", ", dropped)} " +
                "(the new spec has no such volume): allow data loss (eru replace --allow-data-loss) to go on");
        var addresses = new Dictionary<string, string>();
        if (options.KeepIp)
        {
            addresses = await KeptAddressesAsync(old, spec, ct);
            if (addresses.Count == 0)
                return Refused(RefusalKind.Precondition,
                    $"keep-ip: {old.Name} has no address on the new spec's networks ({string.Join(", ", spec.Networks.Keys)})");
        }
        // A crash from here on is undone by the reaper (the old one back with its addresses), or finished when the successor is live.
        var intent = await IntendAsync(Intent.Park, old.Node, old.Id, addresses: addresses, ct: ct);
        if (await ParkAsync(old, addresses, options.StopTimeout, ct) is { } why)
        {
            await DoneAsync(intent);
            return Refused(RefusalKind.Precondition, $"stopping {old.Name}: {why}");
        }
        parked.Add((old, addresses, intent));
        await YieldAsync("parked", ct);
        progress?.Invoke(new DeployProgress(null, null, $"stopped {old.Name}"
            + (addresses.Count > 0 ? $" and released {string.Join(", ", addresses.Values.Select(a => a.Replace(",", " and ")))}" : "")
            + (kept.Count > 0 ? $"; its successor takes volume(s) {string.Join(", ", kept.Keys)}" : "")));
        var networks = spec.Networks.ToDictionary();
        foreach (var (n, keptAddresses) in addresses) // the old addresses, but the spec's fixed IPv6 one if it asks for one
            networks[n] = networks.TryGetValue(n, out var v) && DeploySpec.SplitAddresses(v).V6 is { Length: > 0 } ip6
                ? DeploySpec.SplitAddresses(keptAddresses).V4 + "," + ip6
                : keptAddresses;
        var r = await DeployAsync(OneOn(spec with { Networks = networks, Succeeds = old.Id, InheritedVolumes = kept }, old.Node), ct);
        if (r.Ok && intent is not null && Intents is not null && r.Instances[0].Name is { } successor)
        {
            await Intents.UpdateAsync(intent with { Ident = successor[(successor.LastIndexOf('_') + 1)..] }, ct);
            await YieldAsync("successor-created", ct);
        }
        if (r.Ok || kept.Count == 0 || options.KeepIp || r.Refused is not (RefusalKind.NoCapacity or RefusalKind.Precondition)) return r;
        if (!options.AllowDataLoss)
            return Refused(r.Refused, $"{r.Error}; the data of {old.Name} ({string.Join(", ", kept.Keys)}) is on {old.Node}, " +
                "so its replacement may not go elsewhere unless data loss is allowed (eru replace --allow-data-loss)");
        progress?.Invoke(new DeployProgress(null, null,
            $"no way back onto {old.Node} ({r.Error}): the replacement of {old.Name} starts elsewhere with empty volumes"));
        return await DeployAsync(spec with { Count = 1 }, ct);
    }

    /// <summary>
    /// keep-ip: the old one's addresses on the new spec's networks, as "IPV4[,IPV6]" (the IPv6 one the engine gave it,
    /// else the fixed one its record asked for), so its successor answers at both.
    /// </summary>
    private async Task<Dictionary<string, string>> KeptAddressesAsync(Workload old, DeploySpec spec, CancellationToken ct)
    {
        var v6 = old.Networks6?.ToDictionary(a => a.Key, a => a.Value) ?? [];
        if (await store.GetAsync(Kinds.Nodes, old.Node, ct) is { } node)
        {
            try
            {
                using var engine = engines(node.Value.Endpoint);
                if (await engine.InspectAsync(old.Id, ct) is { } state)
                    foreach (var (n, ip) in state.Addresses6) v6[n] = ip;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogWarning("keep-ip: could not ask {Node} for {Name}'s IPv6 addresses ({Error}): keeping the recorded ones",
                    old.Node, old.Name, ex.Message);
            }
        }
        return spec.Networks.Keys.Where(n => old.Networks.TryGetValue(n, out var ip) && ip.Length > 0)
            .ToDictionary(n => n, n => v6.TryGetValue(n, out var ip6) ? old.Networks[n] + "," + ip6 : old.Networks[n]);
    }

    private static DeployResult Refused(RefusalKind kind, string message) => DeployResult.Of(new Refusal(kind, message));

    /// <summary>One instance of <paramref name="spec"/> on <paramref name="node"/> alone: where a replacement goes first.</summary>
    private static DeploySpec OneOn(DeploySpec spec, string node) =>
        spec with { Count = 1, Nodes = [node], Strategy = Strategy.Auto, PerNodeLimit = 0, Force = false };

    /// <summary>
    /// Runs the old one's before_stop hooks, stops it and detaches it from the networks of
    /// <paramref name="addresses"/> (keep-ip); null when done, else why not.
    /// </summary>
    private async Task<string?> ParkAsync(
        Workload old, IReadOnlyDictionary<string, string> addresses, TimeSpan stopTimeout, CancellationToken ct)
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

    /// <summary>Rollback of a stop-first replace: the old one gets its addresses back and starts again; null when it runs.</summary>
    private async Task<string?> UnparkAsync(Workload old, IReadOnlyDictionary<string, string> addresses, CancellationToken ct)
    {
        try
        {
            if (await store.GetAsync(Kinds.Nodes, old.Node, ct) is not { } node) return $"node {old.Node} is gone";
            using var engine = engines(node.Value.Endpoint);
            var state = await engine.InspectAsync(old.Id, ct);
            if (state is null) return "its container is gone";
            foreach (var (n, kept) in addresses.Where(a => !state.Addresses.ContainsKey(a.Key)))
            {
                var (ip, ip6) = DeploySpec.SplitAddresses(kept);
                await engine.ConnectAsync(old.Id, n, ip, ip6, ct);
            }
            if (!state.Running) await engine.StartAsync(old.Id, ct);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError("keep-ip rollback: could not restart {Name}: {Error}", old.Name, ex.Message);
            return ex.Message;
        }
    }
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

    /// <summary>
    /// A replacement may lose volume data: a named volume the new spec drops is removed with its old instance,
    /// and an instance that cannot go back onto its node starts elsewhere with empty volumes.
    /// </summary>
    public bool AllowDataLoss { get; init; }
}
