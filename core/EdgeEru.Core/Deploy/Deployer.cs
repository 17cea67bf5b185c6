using System.Security.Cryptography;
using EdgeEru.Core.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>
/// Orchestrates a deploy: plan on the registry's view (usage derived from workload records), create each
/// instance through its node's Docker engine, record it in a transaction guarded by the workloads'
/// revision. No pod lock: when another writer got in between, the instance is checked again against
/// fresh usage and either recorded or removed, so memory and CPU pieces are never overcommitted.
/// </summary>
public sealed class Deployer(RegistryStore store, Func<DockerEndpoint, DockerEngine> engines, ILogger<Deployer> log)
{
    private const int Attempts = 16;

    public async Task<DeployResult> DeployAsync(DeploySpec spec, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (problems.Count > 0) return new DeployResult([], "invalid deploy spec: " + string.Join("; ", problems));

        var (nodes, _) = await store.ListAsync(Kinds.Nodes, ct: ct);
        var (alive, _) = await store.ListAsync(Kinds.NodeStatus, ct: ct);
        var (workloads, _) = await store.ListAsync(Kinds.Workloads, ct: ct);
        var aliveNames = alive.Select(s => s.Value.Node).ToHashSet(StringComparer.Ordinal);
        var inPod = nodes.Select(n => n.Value).Where(n => n.Pod == spec.Pod).ToDictionary(n => n.Name, StringComparer.Ordinal);
        foreach (var named in spec.Nodes)
        {
            if (!inPod.ContainsKey(named)) return new DeployResult([], $"node {named} is not in pod {spec.Pod}");
            // Named explicitly still means alive (ERU placed on dead named nodes).
            if (!aliveNames.Contains(named)) return new DeployResult([], $"node {named} has no heartbeat: it is not alive");
        }
        var candidates = (spec.Nodes.Count > 0 ? spec.Nodes.Select(n => inPod[n]) : inPod.Values.Where(n => !n.Unschedulable && aliveNames.Contains(n.Name))).ToList();
        if (candidates.Count == 0) return new DeployResult([], $"pod {spec.Pod} has no alive, schedulable node");

        var byNode = workloads.Select(w => w.Value).ToLookup(w => w.Node, StringComparer.Ordinal);
        var free = candidates.Select(n => NodeUsage.Free(n, byNode[n.Name], spec.App)).ToList();
        var placement = Scheduler.Place(free, new PlacementRequest(spec.Resources, spec.Count, spec.Strategy, spec.PerNodeLimit));
        if (!placement.Ok)
            return new DeployResult([], $"no capacity: {placement.Error}" +
                (placement.NodeReasons.Count > 0 ? " (" + string.Join("; ", placement.NodeReasons.Select(r => $"{r.Key}: {r.Value}")) + ")" : ""));

        var perNode = await Task.WhenAll(placement.PerNode.Select(async p =>
        {
            var node = inPod[p.Key];
            using var engine = engines(node.Endpoint);
            var outcomes = new List<InstanceOutcome>();
            for (var i = 0; i < p.Value; i++) outcomes.Add(await OneAsync(engine, node, spec, ct));
            return outcomes;
        }));
        var instances = perNode.SelectMany(o => o).ToList();
        log.LogInformation("deploy {App}.{Entrypoint}: {Ok} of {Count} instances created", spec.App, spec.Entrypoint, instances.Count(i => i.Error is null), spec.Count);
        return new DeployResult(instances, null);
    }

    private async Task<InstanceOutcome> OneAsync(DockerEngine engine, Node node, DeploySpec spec, CancellationToken ct)
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
                var onNode = (await tx.ListAsync(Kinds.Workloads, ct)).Select(w => w.Value).Where(w => w.Node == node.Name && w.Id != id);
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
                }
                var state = await engine.InspectAsync(id, ct);
                tx.Put(Kinds.Workloads, Record(spec, node, id, name, ident, plan, state));
                if (await tx.CommitAsync(ct)) return new InstanceOutcome(node.Name, id, name, null);
                await Task.Delay(Random.Shared.Next(5, 30), ct); // another writer got in: look again
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

    /// <summary>
    /// Removes workloads: stop (SIGTERM, then SIGKILL after <paramref name="stopTimeout"/>), remove the
    /// container, delete the record; a container already gone still has its record deleted.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> RemoveAsync(IEnumerable<string> workloadIds, TimeSpan stopTimeout, CancellationToken ct = default)
    {
        var outcomes = new List<InstanceOutcome>();
        foreach (var id in workloadIds)
        {
            var record = await store.GetAsync(Kinds.Workloads, id, ct);
            if (record is null)
            {
                outcomes.Add(new InstanceOutcome("", id, null, $"no workload {id}"));
                continue;
            }
            var w = record.Value;
            var node = await store.GetAsync(Kinds.Nodes, w.Node, ct);
            try
            {
                if (node is not null)
                {
                    using var engine = engines(node.Value.Endpoint);
                    await engine.RemoveAsync(id, stopTimeout, ct);
                }
                await store.DeleteAsync(Kinds.Workloads, id, ct);
                outcomes.Add(new InstanceOutcome(w.Node, id, w.Name, null));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The record stays while its container may still run: registry and Docker keep agreeing.
                outcomes.Add(new InstanceOutcome(w.Node, id, w.Name, ex.Message));
            }
        }
        return outcomes;
    }

    private static bool StillFits(CpuPlan plan, NodeResources free) => plan.Cores.All(c => c.Core < free.FreePieces.Length && free.FreePieces[c.Core] >= c.Pieces);

    private static ContainerSpec Container(DeploySpec spec, Node node, string name, string ident, CpuPlan? plan) => new()
    {
        Name = name,
        Image = spec.Image,
        Command = spec.Command,
        Env = spec.Env,
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
        CreatedAt = DateTimeOffset.UtcNow,
    };
}
