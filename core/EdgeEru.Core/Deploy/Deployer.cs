using EdgeEru.Docker;
using EdgeEru.Core.Secrets;
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
public sealed partial class Deployer(
    RegistryStore store, Func<DockerEndpoint, DockerEngine> engines, ILogger<Deployer> log, RegistryWatcher? watcher = null)
{
    private const int Attempts = 16;
    private static readonly TimeSpan HookTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Test seam: where a deploy's instances are created (the node's Docker engine unless set).</summary>
    internal Func<Node, IDockerEngine>? Hosts { get; init; }

    /// <summary>
    /// Test and fault-injection seam: awaited at the operations' yield points ("fence-read", "usage-read",
    /// "address-picked", "created", "before-commit", "removed-container", "parked", "successor-created", "realloc-committed",
    /// "job-started", ...) so that tests can force interleavings of concurrent deploys, or crash Core there.
    /// </summary>
    public Func<string, CancellationToken, Task>? Interleave { get; init; }

    /// <summary>Core's write-ahead log (null: none is written, as for tools that run a Deployer in-process).</summary>
    public IntentLog? Intents { get; init; }

    private string? _identity;

    /// <summary>Where secrets and registry credentials come from; null: specs with secrets are refused.</summary>
    public SecretStore? Secrets { get; init; }

    public DeployerOptions Options { get; init; } = new();

    private IDockerEngine Host(Node node) => Hosts?.Invoke(node) ?? engines(node.Endpoint);

    private Task YieldAsync(string point, CancellationToken ct) => Interleave?.Invoke(point, ct) ?? Task.CompletedTask;

    private async Task<Intent?> IntendAsync(string op, string node, string target, string? ident = null,
        IReadOnlyDictionary<string, string>? addresses = null, CancellationToken ct = default) =>
        Intents is null ? null : await Intents.BeginAsync(op, node, target, ident, addresses, ct);

    /// <summary>Ends an intent; one that cannot be deleted now (etcd away) is left for the reaper, never thrown.</summary>
    private async Task DoneAsync(Intent? intent)
    {
        if (intent is null || Intents is null) return;
        try
        {
            await Intents.EndAsync(intent);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            log.LogWarning("intent {Intent} left for the reaper: {Error}", intent.Id, ex.Message);
        }
    }

    /// <summary>This registry's identity (etcd's cluster id and the prefix), on every container and volume Core makes.</summary>
    private async Task<string> IdentityAsync(CancellationToken ct) => _identity ??= await store.IdentityAsync(ct);

    /// <summary>The nodes a spec may use (pod, names, labels, alive, schedulable) and their free resources.</summary>
    private async Task<(Dictionary<string, Node> Nodes, List<NodeResources> Usage, Refusal? Refusal)> CandidatesAsync(
        DeploySpec spec, CancellationToken ct)
    {
        var (nodes, _) = await store.ListAsync(Kinds.Nodes, ct: ct);
        var (alive, _) = await store.ListAsync(Kinds.NodeStatus, ct: ct);
        var aliveNames = alive.Select(s => s.Value.Node).ToHashSet(StringComparer.Ordinal);
        var inPod = nodes.Select(n => n.Value).Where(n => n.Pod == spec.Pod).ToDictionary(n => n.Name, StringComparer.Ordinal);
        if (inPod.Count == 0 && await store.GetAsync(Kinds.Pods, spec.Pod, ct) is null)
            return ([], [], new Refusal(RefusalKind.NotFound, $"pod {spec.Pod} does not exist"));
        foreach (var named in spec.Nodes)
        {
            if (!inPod.ContainsKey(named)) return ([], [], new Refusal(RefusalKind.NotFound, $"node {named} is not in pod {spec.Pod}"));
            // Named explicitly still means alive (ERU placed on dead named nodes), unless forced.
            if (!spec.Force && !aliveNames.Contains(named))
                return ([], [], new Refusal(RefusalKind.Precondition,
                    $"node {named} has no heartbeat: it is not alive (force to use it anyway)"));
        }
        var candidates = (spec.Nodes.Count > 0
                ? spec.Nodes.Select(n => inPod[n])
                : inPod.Values.Where(n => !n.Unschedulable && aliveNames.Contains(n.Name)))
            .Where(n => spec.NodeLabels.All(l => n.Labels.TryGetValue(l.Key, out var v) && v == l.Value))
            .Where(n => !spec.ExcludeNodeLabels.Any(l => n.Labels.TryGetValue(l.Key, out var v) && v == l.Value))
            .ToDictionary(n => n.Name, StringComparer.Ordinal);
        if (candidates.Count == 0)
            return ([], [], new Refusal(RefusalKind.Precondition, $"pod {spec.Pod} has no alive, schedulable node matching the filter"));

        // One view for every candidate: caught up with the newest fence among them, or one range read.
        var (fences, _) = await store.ListAsync(Kinds.Allocations, ct: ct);
        var newest = fences.Where(f => candidates.ContainsKey(f.Value.Node)).Select(f => f.ModRevision).DefaultIfEmpty(0).Max();
        var byNode = (await WorkloadsAsync(newest, null, ct)).ToLookup(w => w.Node, StringComparer.Ordinal);
        return (candidates,
            [.. candidates.Values.Select(n => NodeUsage.Free(n, byNode[n.Name].Where(w => w.Id != spec.Succeeds), spec.App))], null);
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

    private static NodeAllocation NextFence(string node, Versioned<NodeAllocation>? fence) =>
        new() { Node = node, Generation = (fence?.Value.Generation ?? 0) + 1, ChangedAt = DateTimeOffset.UtcNow };

    /// <summary>Runs a workload's before_stop hooks; a failing one is logged, never keeps the container alive.</summary>
    private async Task BeforeStopAsync(DockerEngine engine, Workload w, CancellationToken ct)
    {
        foreach (var hook in w.BeforeStop ?? [])
        {
            try
            {
                var r = await engine.ExecAsync(w.Id, CommandLine.Split(hook), HookTimeout, ct);
                if (r.ExitCode != 0)
                    log.LogWarning("before_stop hook `{Hook}` of {Name} exited {Code}: {Output}", hook, w.Name, r.ExitCode, r.Output);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A hook must not keep a container alive (it may be stopped or gone already).
                log.LogWarning("before_stop hook `{Hook}` of {Name} failed: {Error}", hook, w.Name, ex.Message);
            }
        }
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
}

/// <summary>What Core allows deploys (Core:BindRoots).</summary>
public sealed record DeployerOptions
{
    /// <summary>Host paths under which bind mounts are allowed; none: bind mounts are refused.</summary>
    public IReadOnlyList<string> BindRoots { get; init; } = [];

    /// <summary>
    /// A deploy's instances created at once per node (dockerd handles several creates and starts in parallel). 1 until
    /// a failure of AppsTests' interrupted job, seen in full Core test runs with 4, is understood (docs/core.md).
    /// </summary>
    public int InFlightPerNode { get; init; } = 1;
}
