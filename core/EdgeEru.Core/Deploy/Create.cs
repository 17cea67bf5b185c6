using System.Security.Cryptography;
using EdgeEru.Docker;
using EdgeEru.Core.Secrets;
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
        if (problems.Count > 0)
            return DeployResult.Of(new Refusal(RefusalKind.Invalid, "invalid deploy spec: " + string.Join("; ", problems)));
        var (prepared, refused) = await PrepareAsync(spec, job: false, ct);
        if (refused is not null) return DeployResult.Of(refused);
        var (candidates, usage, refusal) = await CandidatesAsync(spec, ct);
        if (refusal is not null) return DeployResult.Of(refusal);

        var placement = Scheduler.Place(usage, new PlacementRequest(spec.Resources, spec.Count, spec.Strategy, spec.PerNodeLimit));
        if (!placement.Ok)
            return DeployResult.Of(new Refusal(RefusalKind.NoCapacity, $"no capacity: {placement.Error}" +
                (placement.NodeReasons.Count > 0
                    ? " (" + string.Join("; ", placement.NodeReasons.Select(r => $"{r.Key}: {r.Value}")) + ")"
                    : "")));
        progress?.Invoke(new DeployProgress(placement.PerNode.Where(p => p.Value > 0).ToDictionary(), null));

        var perNode = await Task.WhenAll(placement.PerNode.Where(p => p.Value > 0).Select(async p =>
        {
            var node = candidates[p.Key];
            using var engine = Host(node);
            var outcomes = new List<InstanceOutcome>();
            if (await ImageProblemAsync(engine, node, prepared!, ct) is { } problem)
            {
                for (var i = 0; i < p.Value; i++) Report(outcomes, progress, new InstanceOutcome(node.Name, null, null, problem));
                return outcomes;
            }
            // Several instances in flight per node: dockerd creates and starts containers in parallel, and a deploy's
            // wall time is otherwise the sum of every create, start and commit on its busiest node.
            using var siblings = new Siblings();
            var next = 0;
            await Task.WhenAll(Enumerable.Range(0, Math.Min(p.Value, InFlightPerNode(prepared!))).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) <= p.Value)
                {
                    var outcome = await CreateInstanceAsync(engine, node, prepared!, ct, siblings);
                    lock (outcomes) Report(outcomes, progress, outcome);
                }
            }));
            return outcomes;
        }));
        var instances = perNode.SelectMany(o => o).ToList();
        log.LogInformation("deploy {App}.{Entrypoint}: {Ok} of {Count} instances created",
            spec.App, spec.Entrypoint, instances.Count(i => i.Error is null), spec.Count);
        return new DeployResult(instances, null);
    }

    /// <summary>
    /// How many of a deploy's instances are created at once on one node. Routed networks take one at a time: Core
    /// picks their addresses from what is recorded, and siblings in flight would all pick the same one.
    /// </summary>
    private int InFlightPerNode(Prepared prepared) => prepared.Routed.Count > 0 ? 1 : Math.Max(1, Options.InFlightPerNode);

    /// <summary>
    /// A deploy's instances in flight on one node: what they reserved before they are recorded (so siblings plan
    /// around each other's memory and cores), and a lock so that they commit one after another under the node's
    /// fence instead of making each other's transactions fail.
    /// </summary>
    private sealed class Siblings : IDisposable
    {
        public readonly SemaphoreSlim Commit = new(1, 1);
        public readonly Dictionary<string, Workload> Reserved = new(StringComparer.Ordinal);

        public void Dispose() => Commit.Dispose();
    }

    /// <summary>
    /// What a deploy resolves once for all of its instances: the files (secrets' content too), pull credentials, and which
    /// of its networks are routed (have an ip pool).
    /// </summary>
    private sealed record Prepared(
        DeploySpec Spec, IReadOnlyList<ContainerFile> Files, string? PullAuth, bool Job, IReadOnlySet<string> Routed);

    /// <summary>
    /// Checks what the spec alone cannot (bind mounts under the allowed roots, secrets that exist) and reads
    /// what every instance needs; nothing is created yet, so a refusal leaves nothing behind.
    /// </summary>
    private async Task<(Prepared? Prepared, Refusal? Refusal)> PrepareAsync(DeploySpec spec, bool job, CancellationToken ct)
    {
        foreach (var bind in spec.Volumes.Where(v => !v.IsNamed))
        {
            if (Options.BindRoots.Count == 0)
                return (null, new Refusal(RefusalKind.Invalid, $"volumes: {bind}: bind mounts are off (eru-core has no Core:BindRoots)"));
            if (!Options.BindRoots.Any(root => bind.Source == root
                    || bind.Source.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal)))
                return (null, new Refusal(RefusalKind.Invalid,
                    $"volumes: {bind}: the host path {bind.Source} is outside the allowed roots ({string.Join(", ", Options.BindRoots)})"));
        }
        var files = spec.Files.Select(f => new ContainerFile(f.Path, f.Content, f.Mode, f.Uid, f.Gid)).ToList();
        string? pullAuth = spec.ImageAuth;
        try
        {
            if (spec.Secrets.Count > 0)
            {
                if (Secrets is null) throw new SecretsUnavailableException();
                var content = await Secrets.ReadAsync(spec.Secrets.Select(s => s.Name), ct);
                files.AddRange(spec.Secrets.Select(s => new ContainerFile(s.Target, content[s.Name], s.Mode, s.Uid, s.Gid)));
            }
            if (pullAuth is null && Secrets is not null && !spec.IgnorePull) pullAuth = await Secrets.CredentialsForAsync(spec.Image, ct);
        }
        catch (KeyNotFoundException ex)
        {
            return (null, new Refusal(RefusalKind.NotFound, ex.Message));
        }
        catch (Exception ex) when (ex is SecretsUnavailableException or System.Security.Cryptography.CryptographicException)
        {
            return (null, new Refusal(RefusalKind.Precondition, ex.Message));
        }
        var routed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (network, value) in spec.Networks)
        {
            if (await store.GetAsync(Kinds.IpPools, network, ct) is not { Value: var pool }) continue;
            if (DeploySpec.SplitAddresses(value).V6.Length > 0)
                return (null, new Refusal(RefusalKind.Invalid, $"network {network} is routed (ip pool {pool.Cidr}): IPv4 only"));
            routed.Add(network);
        }
        return (new Prepared(spec, files, pullAuth, job, routed), null);
    }

    /// <summary>Pulls the image onto the node when it lacks it (never with ignore_pull); null when it is there, else why not.</summary>
    private static async Task<string?> ImageProblemAsync(IDockerEngine engine, Node node, Prepared prepared, CancellationToken ct)
    {
        var image = prepared.Spec.Image;
        try
        {
            if (prepared.Spec.IgnorePull)
                return await engine.ImageExistsAsync(image, ct)
                    ? null
                    : $"image {image} is not on node {node.Name}, and ignore_pull is set";
            await engine.EnsureImageAsync(image, prepared.PullAuth, ct);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return ex is ImageTransferException ? ex.Message : $"image {image}: {ex.Message}";
        }
    }

    private static void Report(List<InstanceOutcome> outcomes, Action<DeployProgress>? progress, InstanceOutcome outcome)
    {
        outcomes.Add(outcome);
        progress?.Invoke(new DeployProgress(null, outcome));
    }

    /// <summary>
    /// One instance on one node: its volumes, the container (started and its hooks run, unless a job), then
    /// the record under the node's fence, checked again against fresh usage. A failure rolls back only this
    /// instance: its container and the volumes made for it (never a predecessor's).
    /// </summary>
    private async Task<InstanceOutcome> CreateInstanceAsync(
        IDockerEngine engine, Node node, Prepared prepared, CancellationToken ct, Siblings? siblings = null)
    {
        var spec = prepared.Spec;
        var ident = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        var name = $"{spec.App}_{spec.Entrypoint}_{ident}";
        string? id = null;
        CpuPlan? plan = null;
        ContainerState? state = null;
        var madeVolumes = new List<string>();
        Intent? intent = null;
        try
        {
            var identity = await IdentityAsync(ct);
            intent = await IntendAsync(Intent.Create, node.Name, name, ident, ct: ct);
            var mounts = await VolumesAsync(engine, node, spec, ident, identity, madeVolumes, ct);
            for (var attempt = 1; attempt <= Attempts; attempt++)
            {
                // Made and started: siblings commit one at a time, each on a fence read after the last one's commit.
                var locked = id is not null && siblings is not null;
                if (locked) await siblings!.Commit.WaitAsync(ct);
                try
                {
                    var tx = store.Begin();
                    var fence = await tx.GetAsync(Kinds.Allocations, node.Name, ct); // the commit's only guard
                    await YieldAsync("fence-read", ct);
                    var recorded = (await WorkloadsAsync(fence?.ModRevision ?? 0, node.Name, ct, tx.ReadRevision)).ToList();
                    // A successor (replace) may use its stopped predecessor's room: only one of the two ever runs.
                    var onNode = recorded.Where(w => w.Id != id && w.Id != spec.Succeeds);
                    await YieldAsync("usage-read", ct);
                    if (id is null && siblings is not null)
                    {
                        // Before its container exists, an instance plans around what its siblings in flight reserved.
                        lock (siblings)
                        {
                            siblings.Reserved.Remove(ident);
                            var reserved = siblings.Reserved.Values.Where(r => !recorded.Any(w => w.Ident == r.Ident)).ToList();
                            var free = NodeUsage.Free(node, onNode.Concat(reserved), spec.App);
                            if (Scheduler.Capacity(free, spec.Resources) < 1)
                                throw new InvalidOperationException("no room left on the node (taken meanwhile)");
                            plan = spec.CpuBind ? CpuPlanner.Plan(free.FreePieces, free.CoreNuma, spec.Resources) : null;
                            siblings.Reserved[ident] = Reservation(spec, ident, plan);
                        }
                    }
                    else
                    {
                        var free = NodeUsage.Free(node, onNode, spec.App);
                        if (Scheduler.Capacity(free, spec.Resources) < 1 || (plan is not null && !StillFits(plan, free)))
                        {
                            if (id is null) throw new InvalidOperationException("no room left on the node (taken meanwhile)");
                            // Our cores were taken meanwhile: start over with a fresh plan.
                            await engine.RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
                            (id, plan, state) = (null, null, null);
                            continue;
                        }
                        if (id is null) plan = spec.CpuBind ? CpuPlanner.Plan(free.FreePieces, free.CoreNuma, spec.Resources) : null;
                    }
                    if (id is null)
                    {
                        var refused = new HashSet<string>(StringComparer.Ordinal);
                        for (var pick = 1; id is null; pick++)
                        {
                            // Routed addresses skip every record on the node, the predecessor's too: it runs again if a replace
                            // rolls back.
                            spec = await RoutedAddressesAsync(engine, node, prepared, recorded, refused, identity, ct);
                            await YieldAsync("address-picked", ct);
                            var container = Container(spec, node, name, ident, identity, plan) with
                            {
                                Mounts = mounts, Files = prepared.Files,
                            };
                            try
                            {
                                id = prepared.Job
                                    ? await engine.CreateAsync(container, ct)
                                    : await engine.CreateAndStartAsync(container, ct);
                            }
                            // Another deploy to the node started a container on the address Core picked, after Core looked:
                            // pick again.
                            catch (global::Docker.DotNet.DockerApiException ex) when (pick < 3 && IsAddressTaken(ex)
                                && PickedAddresses(prepared.Spec, spec) is { Count: > 0 } picked)
                            {
                                refused.UnionWith(picked);
                            }
                        }
                        if (!prepared.Job && !spec.IgnoreHooks)
                        {
                            await RunHooksAsync(engine, id, "after_create", spec.AfterCreate, ct);
                            await RunHooksAsync(engine, id, "after_start", spec.AfterStart, ct);
                        }
                        await YieldAsync("created", ct);
                        // Siblings committed meanwhile: commit on a fresh fence read (in turn) rather than fail this one.
                        if (siblings is not null) continue;
                    }
                    // Once: a retried commit records the same container, and its addresses do not change.
                    state ??= await engine.InspectAsync(id, ct);
                    await YieldAsync("before-commit", ct);
                    tx.Put(Kinds.Workloads, Record(spec, node, id, name, ident, plan, state) with
                    {
                        Volumes = mounts.Count > 0 ? [.. mounts] : null,
                        Secrets = spec.Secrets.Count > 0 ? [.. spec.Secrets.Select(x => x.Name).Distinct(StringComparer.Ordinal)] : null,
                        Job = prepared.Job,
                    });
                    tx.Put(Kinds.Allocations, NextFence(node.Name, fence));
                    if (intent is not null) tx.Delete(Kinds.Intents, intent.Id); // recorded: nothing left to finish or undo
                    if (await tx.CommitAsync(ct))
                        return new InstanceOutcome(node.Name, id, name, null)
                        {
                            Addresses = state?.Addresses ?? new Dictionary<string, string>(),
                        };
                }
                finally
                {
                    if (locked) siblings!.Commit.Release();
                }
                await Task.Delay(Random.Shared.Next(5, 30), ct); // another writer changed the node: look again
            }
            throw new RegistryConflictException(Attempts);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await RollBackAsync(engine, id, madeVolumes);
            await DoneAsync(intent);
            // The engine's own words ("bind source path does not exist: ..."), not the HTTP client's wrapping.
            var error = ex is global::Docker.DotNet.DockerApiException api
                ? "the engine refused: " + ImageTransferErrors.BodyMessage(api.ResponseBody)
                : ex.Message;
            log.LogWarning("deploy {Name} on {Node} failed: {Error}", name, node.Name, error);
            return new InstanceOutcome(node.Name, null, name, error);
        }
        catch (OperationCanceledException)
        {
            await RollBackAsync(engine, id, madeVolumes);
            await DoneAsync(intent);
            throw;
        }
        finally
        {
            if (siblings is not null) lock (siblings) siblings.Reserved.Remove(ident);
        }
    }

    /// <summary>What an instance in flight holds on its node, as a record would count it (memory request, bound cores).</summary>
    private static Workload Reservation(DeploySpec spec, string ident, CpuPlan? plan) => new()
    {
        Id = "", Name = "", App = spec.App, Entrypoint = spec.Entrypoint, Ident = ident, Pod = "", Node = "", Image = spec.Image,
        Resources = new ResourceAllocation
        {
            MemoryRequestBytes = spec.MemoryRequest,
            CpuBind = plan is null ? [] : [.. plan.Cores.Select(c => new CpuBinding { Core = c.Core, Pieces = c.Pieces })],
        },
    };

    /// <summary>Removes what one failed instance made: its container and its new volumes.</summary>
    private async Task RollBackAsync(IDockerEngine engine, string? id, List<string> madeVolumes)
    {
        try
        {
            if (id is not null) await engine.RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
            foreach (var volume in madeVolumes) await engine.RemoveVolumeAsync(volume, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError("rolling back {Container}: {Error}; its container or volumes may be left (labelled eru.app)", id, ex.Message);
        }
    }

    /// <summary>
    /// The instance's mounts: a predecessor's volume where the spec inherits one (it must still be on the
    /// node), else a new labelled volume named after the instance; bind mounts as they are.
    /// </summary>
    private static async Task<List<VolumeMount>> VolumesAsync(
        IDockerEngine engine, Node node, DeploySpec spec, string ident, string identity,
        List<string> made, CancellationToken ct)
    {
        var mounts = new List<VolumeMount>();
        foreach (var v in spec.Volumes)
        {
            if (!v.IsNamed)
            {
                mounts.Add(new VolumeMount { Kind = "bind", Source = v.Source, Target = v.Target, ReadOnly = v.ReadOnly });
                continue;
            }
            if (spec.InheritedVolumes.TryGetValue(v.Source, out var inherited))
            {
                if (!await engine.VolumeExistsAsync(inherited, ct))
                    throw new InvalidOperationException(
                        $"volume {v.Source}: the predecessor's volume {inherited} is no longer on {node.Name}");
            }
            else
            {
                inherited = $"{spec.App}_{spec.Entrypoint}_{v.Source}_{ident}";
                await engine.EnsureVolumeAsync(inherited, new Dictionary<string, string>
                {
                    [DockerEngine.AppLabel] = spec.App, [DockerEngine.EntrypointLabel] = spec.Entrypoint,
                    [DockerEngine.IdentLabel] = ident, [DockerEngine.NodeLabel] = node.Name, [DockerEngine.VolumeLabel] = v.Source,
                    [DockerEngine.RegistryLabel] = identity,
                }, ct);
                made.Add(inherited);
            }
            mounts.Add(new VolumeMount { Kind = "volume", Name = v.Source, Source = inherited, Target = v.Target, ReadOnly = v.ReadOnly });
        }
        return mounts;
    }

    /// <summary>Runs hooks inside the container in order; the first that fails fails the instance.</summary>
    private static async Task RunHooksAsync(IDockerEngine engine, string id, string kind, IReadOnlyList<string> hooks, CancellationToken ct)
    {
        foreach (var hook in hooks)
        {
            var r = await engine.ExecAsync(id, CommandLine.Split(hook), HookTimeout, ct);
            if (r.ExitCode != 0) throw new InvalidOperationException($"{kind} hook `{hook}` exited {r.ExitCode}: {r.Output}");
        }
    }

    private static bool StillFits(CpuPlan plan, NodeResources free) =>
        plan.Cores.All(c => c.Core < free.FreePieces.Length && free.FreePieces[c.Core] >= c.Pieces);

    private static ContainerSpec Container(DeploySpec spec, Node node, string name, string ident, string identity, CpuPlan? plan) => new()
    {
        Runtime = spec.Runtime,
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
            [DockerEngine.IdentLabel] = ident, [DockerEngine.NodeLabel] = node.Name, [DockerEngine.RegistryLabel] = identity,
        },
        Networks = spec.Networks4(),
        Networks6 = spec.Networks6(),
        MemoryLimit = spec.MemoryLimit,
        CpuQuota = plan is null ? spec.Cpu : 0,
        Cpuset = plan is null ? null : DockerEngine.Cpuset(plan.Cores.Select(c => c.Core)),
        CpusetMems = plan?.Numa,
    };

    private static Workload Record(
        DeploySpec spec, Node node, string id, string name, string ident, CpuPlan? plan, ContainerState? state) => new()
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
        Networks = StringMap.From(spec.Networks4().Select(n => new KeyValuePair<string, string>(n.Key,
            state?.Addresses.TryGetValue(n.Key, out var ip) == true ? ip : n.Value))),
        Networks6 = spec.Networks6() is { Count: > 0 } fixed6 ? StringMap.From(fixed6) : null,
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
        AfterStart = spec.AfterStart.Count > 0 ? [.. spec.AfterStart] : null,
        CreatedAt = DateTimeOffset.UtcNow,
    };
}
