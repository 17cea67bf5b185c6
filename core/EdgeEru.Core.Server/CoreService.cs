using System.Threading.Channels;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Scheduling;
using EdgeEru.Docker;
using EdgeEru.Core.Secrets;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Grpc.Core;
using Prometheus;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>
/// The gRPC API: validates each request (INVALID_ARGUMENT naming the field), then hands it to the
/// deployer or the registry store. Reads of workloads come from the watcher's snapshot, caught up with
/// etcd's current revision first so that a client reads its own writes.
/// </summary>
public sealed partial class CoreService(
    RegistryStore store, RegistryWatcher watcher, Deployer deployer, SecretStore secrets, TokenStore tokens,
    SnapshotHistory history, AgentAccess agents, ILogger<CoreService> log)
    : V1.Core.CoreBase
{
    private static readonly Counter Instances =
        Metrics.CreateCounter("eru_core_instances_total", "Instances created, failed or removed", "result");
    private static readonly Counter Refusals = Metrics.CreateCounter("eru_core_refusals_total", "Requests refused, by status", "code");

    public override async Task<V1.Pod> AddPod(V1.AddPodRequest request, ServerCallContext context)
    {
        var pod = new Pod { Name = request.Name, Description = request.Description, Labels = StringMap.From(request.Labels) };
        Require(pod.Validate());
        if (!await store.CreateAsync(Kinds.Pods, pod, ct: context.CancellationToken))
            throw Refuse(StatusCode.AlreadyExists, $"pod {pod.Name} exists already");
        log.LogInformation("pod {Pod} added", pod.Name);
        return ToPod(pod, 0);
    }

    public override async Task<V1.RemovePodReply> RemovePod(V1.RemovePodRequest request, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (await store.GetAsync(Kinds.Pods, request.Name, ct) is null)
            throw Refuse(StatusCode.NotFound, $"pod {request.Name} does not exist");
        var nodes = (await store.ListAsync(Kinds.Nodes, ct: ct)).Items
            .Where(n => n.Value.Pod == request.Name).Select(n => n.Value.Name).ToList();
        if (nodes.Count > 0) throw Refuse(StatusCode.FailedPrecondition, $"pod {request.Name} still has nodes: {string.Join(", ", nodes)}");
        await store.DeleteAsync(Kinds.Pods, request.Name, ct);
        log.LogInformation("pod {Pod} removed", request.Name);
        return new V1.RemovePodReply();
    }

    public override async Task<V1.ListPodsReply> ListPods(V1.ListPodsRequest request, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        var pods = (await store.ListAsync(Kinds.Pods, ct: ct)).Items;
        var nodes = (await store.ListAsync(Kinds.Nodes, ct: ct)).Items.GroupBy(n => n.Value.Pod).ToDictionary(g => g.Key, g => g.Count());
        var reply = new V1.ListPodsReply();
        reply.Pods.Add(pods.Select(p => ToPod(p.Value, nodes.GetValueOrDefault(p.Value.Name))));
        return reply;
    }

    public override async Task<V1.Node> AddNode(V1.AddNodeRequest request, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (request.Node is null) throw Refuse(StatusCode.InvalidArgument, "node is missing");
        var node = ApiMapping.ToNode(request.Node);
        Require(node.Validate());
        if (await store.GetAsync(Kinds.Pods, node.Pod, ct) is null) throw Refuse(StatusCode.NotFound, $"pod {node.Pod} does not exist");
        // The engine must answer; what the node left out of its capacity is what Docker reports.
        try
        {
            using var engine = new DockerEngine(node.Endpoint);
            var (cpus, memory, _) = await engine.InfoAsync(ct).WaitAsync(TimeSpan.FromSeconds(10), ct);
            node = node with
            {
                Capacity = node.Capacity with
                {
                    CpuCores = node.Capacity.CpuCores > 0 ? node.Capacity.CpuCores : cpus,
                    MemoryBytes = node.Capacity.MemoryBytes > 0 ? node.Capacity.MemoryBytes : memory,
                },
            };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw Refuse(StatusCode.FailedPrecondition, $"node {node.Name}: the Docker engine at {node.Endpoint.Address} " +
                $"did not answer: {DockerEngine.Explain(ex, node.Endpoint)}");
        }
        Require(node.Validate());
        if (!await store.CreateAsync(Kinds.Nodes, node, ct: ct)) throw Refuse(StatusCode.AlreadyExists, $"node {node.Name} exists already");
        log.LogInformation("node {Node} added to pod {Pod}: {Cpus} cores, {Memory} bytes",
            node.Name, node.Pod, node.Capacity.CpuCores, node.Capacity.MemoryBytes);
        return ApiMapping.FromNode(node, watcher.Current.IsNodeAlive(node.Name), []);
    }

    public override async Task<V1.RemoveNodeReply> RemoveNode(V1.RemoveNodeRequest request, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        var removed = await store.TransactAsync(async (tx, c) =>
        {
            if (await tx.GetAsync(Kinds.Nodes, request.Name, c) is null) return "missing";
            var fence = await tx.GetAsync(Kinds.Allocations, request.Name, c);
            var snapshot = await watcher.WaitForRevisionAsync(fence?.ModRevision ?? 0, c).WaitAsync(TimeSpan.FromSeconds(5), c);
            var left = snapshot.WorkloadsOn(request.Name).Select(w => w.Name).ToList();
            if (left.Count > 0 && !request.Force)
                return $"node {request.Name} still has {left.Count} workload(s): {string.Join(", ", left.Take(5))}";
            tx.Delete(Kinds.Nodes, request.Name);
            if (fence is not null) tx.Delete(Kinds.Allocations, request.Name);
            // Its blocks of routed networks are free again (a node added later under this name gets a fresh one).
            foreach (var pool in await tx.ListAsync(Kinds.IpPools, c))
                if (pool.Value.Blocks.ContainsKey(request.Name)) tx.Put(Kinds.IpPools, IpBlocks.Release(pool.Value, request.Name));
            return null;
        }, ct: ct);
        if (removed == "missing") throw Refuse(StatusCode.NotFound, $"node {request.Name} does not exist");
        if (removed is not null) throw Refuse(StatusCode.FailedPrecondition, removed + " (remove them first, or force)");
        log.LogInformation("node {Node} removed", request.Name);
        return new V1.RemoveNodeReply();
    }

    public override async Task<V1.ListNodesReply> ListNodes(V1.ListNodesRequest request, ServerCallContext context)
    {
        var snapshot = await CaughtUpAsync(context.CancellationToken);
        var reply = new V1.ListNodesReply();
        reply.Nodes.Add(snapshot.Nodes.Values.Where(n => request.Pod.Length == 0 || n.Pod == request.Pod)
            .OrderBy(n => n.Name, StringComparer.Ordinal)
            .Select(n => ApiMapping.FromNode(n, snapshot)));
        return reply;
    }

    public override async Task<V1.Node> SetNode(V1.SetNodeRequest request, ServerCallContext context)
    {
        var invalid = request.SetLabels.Keys.Concat(request.RemoveLabels).FirstOrDefault(k => k.Length is 0 or > 253);
        if (invalid is not null) throw Refuse(StatusCode.InvalidArgument, $"label key \"{invalid}\" must be 1-253 characters");
        var updated = await store.UpdateAsync(Kinds.Nodes, request.Name, n =>
        {
            if (n is null) return null;
            var labels = n.Labels.ToDictionary(l => l.Key, l => l.Value);
            foreach (var k in request.RemoveLabels) labels.Remove(k);
            foreach (var (k, v) in request.SetLabels) labels[k] = v;
            return n with
            {
                Labels = StringMap.From(labels), Unschedulable = request.HasUnschedulable ? request.Unschedulable : n.Unschedulable,
            };
        }, ct: context.CancellationToken) ?? throw Refuse(StatusCode.NotFound, $"node {request.Name} does not exist");
        log.LogInformation("node {Node} updated: unschedulable {Unschedulable}", updated.Name, updated.Unschedulable);
        var snapshot = await CaughtUpAsync(context.CancellationToken);
        return ApiMapping.FromNode(updated, snapshot);
    }

    public override async Task<V1.CapacityReply> Capacity(V1.CapacityRequest request, ServerCallContext context)
    {
        var spec = Checked(request.Request);
        var (nodes, refusal) = await deployer.CapacityAsync(spec, context.CancellationToken);
        if (refusal is not null) throw Refused(ApiMapping.Refused(refusal.Kind, refusal.Message));
        var reply = new V1.CapacityReply { Total = nodes.Sum(n => n.Capacity) };
        reply.Nodes.Add(nodes.Select(n =>
            new V1.NodeFit { Node = n.Node, Capacity = n.Capacity, Existing = n.Existing, Reason = n.Reason ?? "" }));
        return reply;
    }

    public override async Task Deploy(
        V1.DeployRequest request, IServerStreamWriter<V1.DeployEvent> responseStream, ServerCallContext context)
    {
        var spec = Checked(request);
        await StreamAsync(responseStream, progress => deployer.DeployAsync(spec, progress, context.CancellationToken),
            context.CancellationToken);
    }

    public override async Task Replace(
        V1.ReplaceRequest request, IServerStreamWriter<V1.DeployEvent> responseStream, ServerCallContext context)
    {
        var spec = Checked(request.Request);
        var options = new ReplaceOptions
        {
            BatchSize = request.BatchSize > 0 ? request.BatchSize : 1,
            HealthTimeout = TimeSpan.FromMilliseconds(request.HealthTimeoutMs > 0 ? request.HealthTimeoutMs : 60_000),
            OnlyTags = [.. request.OnlyTags],
            KeepIp = request.KeepIp,
            MaxUnavailable = request.MaxUnavailable,
            AllowDataLoss = request.AllowDataLoss,
        };
        await StreamAsync(responseStream, progress => deployer.ReplaceAsync(spec, options, progress, context.CancellationToken),
            context.CancellationToken);
    }

    /// <summary>
    /// Runs a deploy-like operation and streams its progress in order (gRPC writes must not overlap):
    /// the deployer reports into a channel, this call drains it to the client.
    /// </summary>
    private static async Task StreamAsync(
        IServerStreamWriter<V1.DeployEvent> stream, Func<Action<DeployProgress>, Task<DeployResult>> run, CancellationToken ct)
    {
        var events = Channel.CreateUnbounded<DeployProgress>(new UnboundedChannelOptions { SingleReader = true });
        var work = Task.Run(async () =>
        {
            try
            {
                return await run(p => events.Writer.TryWrite(p));
            }
            finally
            {
                events.Writer.TryComplete();
            }
        }, ct);
        await foreach (var p in events.Reader.ReadAllAsync(ct))
        {
            var e = new V1.DeployEvent();
            if (p.Planned is not null)
            {
                e.Planned = new V1.Planned();
                e.Planned.PerNode.Add(p.Planned.ToDictionary());
            }
            else if (p.Instance is not null)
            {
                e.Instance = ApiMapping.ToResult(p.Instance);
                Instances.WithLabels(p.Instance.Error is null ? "created" : "failed").Inc();
            }
            else e.Note = p.Note ?? "";
            await stream.WriteAsync(e, ct);
        }
        var result = await work;
        if (result.Refused != RefusalKind.None) throw Refused(ApiMapping.Refused(result.Refused, result.Error!));
        if (result.Error is not null) await stream.WriteAsync(new V1.DeployEvent { Note = result.Error }, ct);
        await stream.WriteAsync(new V1.DeployEvent
        {
            Summary = new V1.Summary
            {
                Created = result.Instances.Count(i => i.Error is null), Failed = result.Instances.Count(i => i.Error is not null),
            },
        }, ct);
    }

    public override async Task<V1.ListWorkloadsReply> ListWorkloads(V1.ListWorkloadsRequest request, ServerCallContext context)
    {
        var snapshot = await CaughtUpAsync(context.CancellationToken);
        var reply = new V1.ListWorkloadsReply();
        reply.Workloads.Add(snapshot.Workloads.Where(w => w.Record is { } r
                && (request.App.Length == 0 || r.App == request.App)
                && (request.Entrypoint.Length == 0 || r.Entrypoint == request.Entrypoint)
                && (request.Node.Length == 0 || r.Node == request.Node) && (request.Pod.Length == 0 || r.Pod == request.Pod))
            .OrderBy(w => w.Record!.App, StringComparer.Ordinal)
            .ThenBy(w => w.Record!.Entrypoint, StringComparer.Ordinal)
            .ThenBy(w => w.Record!.Name, StringComparer.Ordinal)
            .Select(w => ApiMapping.FromView(w, snapshot)));
        return reply;
    }

    public override async Task Remove(
        V1.RemoveRequest request, IServerStreamWriter<V1.InstanceResult> responseStream, ServerCallContext context)
    {
        var ids = await ResolveAsync(request.Workloads, context.CancellationToken);
        var timeout = TimeSpan.FromSeconds(Math.Clamp(request.StopTimeoutS, 0, 600));
        foreach (var id in ids)
        {
            var outcome = (await deployer.RemoveAsync([id], timeout, null, hooks: !request.IgnoreHooks, context.CancellationToken))[0];
            Instances.WithLabels(outcome.Error is null ? "removed" : "remove_failed").Inc();
            await responseStream.WriteAsync(ApiMapping.ToResult(outcome), context.CancellationToken);
        }
    }

    public override async Task Realloc(
        V1.ReallocRequest request, IServerStreamWriter<V1.InstanceResult> responseStream, ServerCallContext context)
    {
        var spec = new ReallocSpec
        {
            MemoryRequest = request.HasMemoryRequestBytes ? request.MemoryRequestBytes : null,
            MemoryLimit = request.HasMemoryLimitBytes ? request.MemoryLimitBytes : null,
            Cpu = request.HasCpu ? request.Cpu : null,
            CpuLimit = request.HasCpuLimit ? request.CpuLimit : null,
            CpuBind = request.HasCpuBind ? request.CpuBind : null,
        };
        Require(spec.Problems());
        var ids = await ResolveAsync(request.Workloads, context.CancellationToken, apps: true);
        foreach (var id in ids)
        {
            var outcome = (await deployer.ReallocAsync([id], spec, null, context.CancellationToken))[0];
            Instances.WithLabels(outcome.Error is null ? "reallocated" : "realloc_refused").Inc();
            await responseStream.WriteAsync(ApiMapping.ToResult(outcome), context.CancellationToken);
        }
    }

    public override async Task Control(
        V1.ControlRequest request, IServerStreamWriter<V1.InstanceResult> responseStream, ServerCallContext context)
    {
        var action = request.Action switch
        {
            V1.ControlAction.Start => ControlAction.Start,
            V1.ControlAction.Stop => ControlAction.Stop,
            V1.ControlAction.Restart => ControlAction.Restart,
            _ => throw Refuse(StatusCode.InvalidArgument, "action must be start, stop or restart"),
        };
        var ids = await ResolveAsync(request.Workloads, context.CancellationToken);
        var timeout = TimeSpan.FromSeconds(Math.Clamp(request.StopTimeoutS, 0, 600));
        foreach (var id in ids)
            await responseStream.WriteAsync(
                ApiMapping.ToResult((await deployer.ControlAsync([id], action, timeout, null, !request.IgnoreHooks,
                context.CancellationToken))[0]), context.CancellationToken);
    }

    /// <summary>
    /// Workload references (id, unique id prefix of 6 or more, or name; with <paramref name="apps"/> also APP or
    /// APP.ENTRYPOINT for all of its instances) to ids; NOT_FOUND names the first that matches nothing.
    /// </summary>
    private async Task<List<string>> ResolveAsync(IEnumerable<string> refs, CancellationToken ct, bool apps = false)
    {
        var list = refs.ToList();
        if (list.Count == 0) throw Refuse(StatusCode.InvalidArgument, "workloads: name at least one workload");
        var all = (await store.ListAsync(Kinds.Workloads, ct: ct)).Items.Select(w => w.Value).ToList();
        var (found, refusal) = WorkloadRefs.Resolve(list, all, apps);
        if (refusal is not null) throw Refuse(refusal.Code, refusal.Message);
        return [.. found.Select(w => w.Id)];
    }

    /// <summary>The watcher's snapshot once it has seen etcd's current revision (a client reads its own writes).</summary>
    internal async Task<Registry.Snapshot.RegistrySnapshot> CaughtUpAsync(CancellationToken ct)
    {
        var (_, revision) = await store.ListAsync(Kinds.Pods, ct: ct);
        try
        {
            return await watcher.WaitForRevisionAsync(revision, ct).WaitAsync(TimeSpan.FromSeconds(1), ct);
        }
        catch (TimeoutException)
        {
            // etcd's revision may be a write outside the prefix (another installation on this etcd, a foreign lease
            // expiring), which this watcher never sees: then the last write under the prefix is the one to wait for.
            revision = await store.LatestWriteAsync(ct);
        }
        try
        {
            return await watcher.WaitForRevisionAsync(revision, ct).WaitAsync(TimeSpan.FromSeconds(4), ct);
        }
        catch (TimeoutException)
        {
            throw Refuse(StatusCode.Unavailable, $"the registry watcher is behind revision {revision}");
        }
    }

    private static V1.Pod ToPod(Pod p, int nodes)
    {
        var v = new V1.Pod { Name = p.Name, Description = p.Description, Nodes = nodes };
        v.Labels.Add(p.Labels.ToDictionary(l => l.Key, l => l.Value));
        return v;
    }

    private static DeploySpec Checked(V1.DeployRequest? r)
    {
        try
        {
            return ApiMapping.Checked(r);
        }
        catch (RpcException ex)
        {
            throw Refused(ex);
        }
    }

    private static void Require(IReadOnlyList<string> problems)
    {
        if (problems.Count > 0) throw Refuse(StatusCode.InvalidArgument, string.Join("; ", problems));
    }

    private static RpcException Refuse(StatusCode code, string message) => Refused(new RpcException(new Status(code, message)));

    private static RpcException Refused(RpcException ex)
    {
        Refusals.WithLabels(ex.StatusCode.ToString()).Inc();
        return ex;
    }
}
