using System.Collections.Concurrent;
using EdgeEru.Core.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Agent;

public sealed class AgentOptions
{
    public required string Node { get; init; }
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(9);

    /// <summary>How often containers are reconciled with the registry (events come with the next increment).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The agent of one node: a heartbeat under its lease while Docker answers, and for every EdgeEru
/// container on the node a status (running, healthy, addresses, reason) under the same lease, written
/// only when it changes. Health follows the workload's spec: healthy after N successes, unhealthy after
/// M failures, not judged during the start grace. A status is never written for a workload without a record.
/// </summary>
/// <remarks>Records come from <paramref name="registry"/> (a watcher's current snapshot): no etcd read per container per tick.</remarks>
public sealed class NodeAgent(RegistryStore store, Func<RegistrySnapshot> registry, DockerEngine engine, AgentOptions options, ILogger<NodeAgent> log)
    : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Health> _health = new();
    private readonly Dictionary<string, WorkloadStatus> _written = [];
    private RegistryLease? _lease;
    private bool _heartbeat;

    private sealed class Health
    {
        public bool Healthy;
        public int Successes;
        public int Failures;
        public string? Reason = "not checked yet";
        public DateTime LastCheck;
    }

    /// <summary>Runs until cancelled; then deletes its keys (clean shutdown) by revoking its lease.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await TickAsync(ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogWarning("agent {Node}: {Error}", options.Node, ex.Message);
                if (_heartbeat && ex is not Grpc.Core.RpcException) await StopHeartbeatAsync(); // Docker is not answering: the node is not alive
            }
            try
            {
                await Task.Delay(options.Interval, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>One reconciliation: heartbeat, then every container's status.</summary>
    public async Task TickAsync(CancellationToken ct)
    {
        var (_, memory, dockerVersion) = await engine.InfoAsync(ct); // throws when Docker is away
        if (_lease is null || _lease.IsLost)
        {
            _lease = await store.GrantLeaseAsync(options.LeaseTtl, ct: ct);
            _written.Clear(); // a new lease: every key must be written again
        }
        if (!_heartbeat)
        {
            await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = options.Node, HeartbeatAt = DateTimeOffset.UtcNow, AgentVersion = "0.1", DockerVersion = dockerVersion }, _lease.Id, ct);
            _heartbeat = true;
            log.LogInformation("agent {Node}: heartbeat under lease {Lease} (docker {Version}, {Memory} bytes)", options.Node, _lease.Id, dockerVersion, memory);
        }

        var containers = await engine.ListEdgeEruAsync(ct);
        var snapshot = registry();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in containers)
        {
            if (!snapshot.Workloads.TryGetValue(c.Id, out var view) || view.Record is not { } w) continue; // never a status without a record
            seen.Add(c.Id);
            var address = c.Addresses.Values.FirstOrDefault();
            var h = _health.GetOrAdd(c.Id, _ => new Health());
            if (!c.Running)
            {
                (h.Healthy, h.Successes, h.Failures, h.Reason) = (false, 0, 0, "not running");
            }
            else if (DateTime.UtcNow - h.LastCheck >= TimeSpan.FromMilliseconds(w.Healthcheck?.IntervalMs ?? 1000))
            {
                h.LastCheck = DateTime.UtcNow;
                var problem = address is null ? "no address" : await HealthProbe.CheckAsync(w, address, ct);
                var inGrace = w.Healthcheck is { StartGraceMs: > 0 } g && DateTimeOffset.UtcNow - w.CreatedAt < TimeSpan.FromMilliseconds(g.StartGraceMs);
                if (problem is null)
                {
                    h.Failures = 0;
                    if (++h.Successes >= (w.Healthcheck?.HealthyAfter ?? 1) && !h.Healthy)
                    {
                        h.Healthy = true;
                        log.LogInformation("workload {Name} healthy", w.Name);
                    }
                    h.Reason = h.Healthy ? null : "starting";
                }
                else if (!inGrace)
                {
                    h.Successes = 0;
                    if (++h.Failures >= (w.Healthcheck?.UnhealthyAfter ?? 1) && h.Healthy)
                    {
                        h.Healthy = false;
                        log.LogWarning("workload {Name} unhealthy: {Reason}", w.Name, problem);
                    }
                    h.Reason = problem;
                }
            }
            var status = new WorkloadStatus
            {
                Id = c.Id, Node = options.Node, Running = c.Running, Healthy = c.Running && h.Healthy,
                Addresses = StringMap.From(c.Addresses), Reason = c.Running && h.Healthy ? null : h.Reason,
                CheckedAt = DateTimeOffset.UtcNow,
            };
            // Only on change: a steady node costs etcd nothing but its lease keep-alive.
            if (_written.TryGetValue(c.Id, out var before) && Same(before, status)) continue;
            await store.PutAsync(Kinds.WorkloadStatus, status, _lease.Id, ct);
            _written[c.Id] = status;
        }
        foreach (var gone in _written.Keys.Where(id => !seen.Contains(id)).ToList())
        {
            await store.DeleteAsync(Kinds.WorkloadStatus, gone, ct);
            _written.Remove(gone);
            _health.TryRemove(gone, out _);
        }
    }

    private static bool Same(WorkloadStatus a, WorkloadStatus b) =>
        a.Running == b.Running && a.Healthy == b.Healthy && a.Reason == b.Reason && a.Addresses.Equals(b.Addresses);

    private async Task StopHeartbeatAsync()
    {
        _heartbeat = false;
        try
        {
            await store.DeleteAsync(Kinds.NodeStatus, options.Node);
        }
        catch (Grpc.Core.RpcException)
        {
            // etcd away too: the lease will expire.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_lease is not null) await _lease.DisposeAsync(); // clean shutdown: heartbeat and statuses go at once
    }
}
