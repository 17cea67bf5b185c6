using System.Security.Cryptography;
using EdgeEru.Core.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>Deploy: plan on the registry's view, then create and record each instance under its node's fence.</summary>
public sealed partial class Deployer
{
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
            for (var i = 0; i < p.Value; i++) Report(outcomes, progress, await CreateInstanceAsync(engine, node, spec, ct));
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

    private async Task<InstanceOutcome> CreateInstanceAsync(IInstanceHost engine, Node node, DeploySpec spec, CancellationToken ct)
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
                tx.Put(Kinds.Allocations, NextFence(node.Name, fence));
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
