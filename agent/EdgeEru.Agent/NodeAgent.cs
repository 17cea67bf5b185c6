using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Threading.Channels;
using EdgeEru.Agent.Health;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;

namespace EdgeEru.Agent;

public sealed class AgentOptions
{
    public required string Node { get; init; }
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(9);

    /// <summary>How often due health checks run and changed statuses are written (events wake the agent at once).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Every container is listed again this often, so a missed Docker event is corrected.</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait between attempts while Docker does not answer.</summary>
    public TimeSpan DockerBackoffMax { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The agent's HTTP base URL, published in its heartbeat (how <c>eru logs</c> finds it).</summary>
    public string? AgentUrl { get; init; }

    public string AgentVersion { get; init; } = "0.2.0";
}

/// <summary>
/// The agent of one node: a heartbeat under its lease while Docker answers, and for every EdgeEru
/// container on the node a status (running, healthy, addresses, reason) under the same lease, written
/// only when it changes. Docker events wake it at once; a full listing every reconcile interval corrects
/// missed ones. Health follows the workload's spec (<see cref="HealthState"/>). A status is never written
/// for a workload without a record.
/// </summary>
/// <remarks>
/// Faults: Docker away stops the heartbeat, retries with backoff, and resumes with a full reconcile.
/// etcd away: checks go on, the latest state is held in memory, and when etcd is back (a new lease if the
/// old one expired) every key is written again. Records come from <paramref name="registry"/> (a
/// watcher's current snapshot): no etcd read per container per tick.
/// </remarks>
public sealed class NodeAgent(
    RegistryStore store, Func<RegistrySnapshot> registry, DockerEngine engine, AgentOptions options, ILogger<NodeAgent> log)
    : IAsyncDisposable
{
    /// <summary>What woke the writer: a container's Docker event, a full reconcile, or a health verdict or reason that changed.</summary>
    private readonly record struct Wake(string Id, string Action);

    private static readonly Wake FullReconcile = new("", "reconcile");
    private static readonly Wake HealthChanged = new("", "health");
    private static readonly Wake ReconcileDone = new("", "listed");
    private readonly ConcurrentDictionary<string, HealthState> _health = new();
    private readonly Dictionary<string, WorkloadStatus> _written = [];
    private readonly Channel<Wake> _wake = Channel.CreateUnbounded<Wake>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _checkNow = new(0, 1);
    private readonly AgentMetrics _metrics = new(options.Node);
    private ImmutableDictionary<string, ContainerState> _containers = ImmutableDictionary<string, ContainerState>.Empty;
    private RegistryLease? _lease;
    private long _lostLeaseLogged;
    private bool _heartbeat;
    private Task? _writing;
    private readonly CancellationTokenSource _disposed = new();
    private Task _loopDone = Task.CompletedTask;
    private bool _dockerUp;
    private bool _etcdUp = true;
    private DateTime _nextReconcile = DateTime.MinValue;
    private Task<IReadOnlyList<ContainerState>>? _listing;
    private bool _listAgain;
    private readonly HashSet<string> _eventsWhileListing = new(StringComparer.Ordinal);

    public string Node => options.Node;

    /// <summary>The URL published in the heartbeat, if any.</summary>
    public string? AgentUrl => options.AgentUrl;

    /// <summary>The EdgeEru containers on this node as last seen (the log shipper and metrics follow this).</summary>
    public ImmutableDictionary<string, ContainerState> Containers => Volatile.Read(ref _containers);

    /// <summary>Raised (on the agent's loop) after <see cref="Containers"/> changed.</summary>
    public event Action? ContainersChanged;

    public bool DockerUp => Volatile.Read(ref _dockerUp);
    public bool EtcdUp => Volatile.Read(ref _etcdUp);
    public bool HeartbeatWritten => Volatile.Read(ref _heartbeat);

    /// <summary>Runs until cancelled; <see cref="DisposeAsync"/> then deletes its keys (clean shutdown) by revoking its lease.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        // Disposing the agent stops its loop too: a disposed agent never grants itself a new lease.
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposed.Token);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _loopDone = done.Task;
        try
        {
            await LoopAsync(run.Token);
        }
        finally
        {
            done.TrySetResult();
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        using var stopEvents = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var events = Task.Run(() => FollowEventsAsync(stopEvents.Token), CancellationToken.None);
        // Health checks keep their own cadence: a round of checks never stands between a Docker event and its status.
        var checks = Task.Run(() => CheckLoopAsync(stopEvents.Token), CancellationToken.None);
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!ct.IsCancellationRequested)
        {
            var wait = options.Interval;
            try
            {
                await TickAsync(ct);
                backoff = TimeSpan.FromMilliseconds(500);
            }
            catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or Grpc.Core.RpcException)
            {
                break;
            }
            catch (Grpc.Core.RpcException ex)
            {
                if (_etcdUp)
                    log.LogWarning("agent {Node}: etcd away ({Status}); checks go on, statuses are written when it is back",
                        options.Node, ex.StatusCode);
                SetEtcdUp(false);
            }
            catch (Exception ex) when (IsDockerFault(ex, ct))
            {
                if (_dockerUp || _heartbeat)
                    log.LogWarning("agent {Node}: Docker does not answer ({Error}); heartbeat stopped", options.Node, ex.Message);
                SetDockerUp(false);
                DropListing(); // Docker's return starts a new one
                await DrainWriteAsync();
                if (_heartbeat) await StopHeartbeatAsync();
                wait = backoff;
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.DockerBackoffMax.Ticks));
            }
            catch (Exception ex) when (ex is InvalidOperationException or RegistryValueException or ArgumentException)
            {
                // Not a fault of Docker or of etcd's reachability (e.g. etcd refused a lease): say so and try again.
                log.LogError(ex, "agent {Node}: round failed", options.Node);
                wait = backoff;
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.DockerBackoffMax.Ticks));
            }
            try
            {
                // An event (or the interval) wakes the next tick.
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(wait);
                await _wake.Reader.WaitToReadAsync(timeout.Token);
                if (!_dockerUp) await Task.Delay(wait, ct); // while Docker is away, events do not shorten the backoff
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        await stopEvents.CancelAsync();
        await events;
        await checks;
        DropListing();
    }

    /// <summary>
    /// Forgets a background listing (Docker is away, or the agent stops) without waiting for it: against a Docker that
    /// hangs it ends only at the client's timeout. What it meets is observed and dropped.
    /// </summary>
    private void DropListing()
    {
        _listing?.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        _listing = null;
        _eventsWhileListing.Clear();
    }

    private static bool IsDockerFault(Exception ex, CancellationToken ct) =>
        ex is HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException
            or global::Docker.DotNet.DockerApiException
        || ex is OperationCanceledException && !ct.IsCancellationRequested; // Docker.DotNet's own request timeout

    /// <summary>
    /// One round: Docker answers? containers (all, or those events named), then the registry. Health checks run in
    /// their own loop (<see cref="CheckLoopAsync"/>); a verdict that changes wakes this one.
    /// </summary>
    public async Task TickAsync(CancellationToken ct)
    {
        var wakes = new List<Wake>();
        while (_wake.Reader.TryRead(out var w)) wakes.Add(w);
        // A round woken by Docker's events needs no ping: the event stream just spoke. The interval's rounds find Docker away.
        if (!_dockerUp || !wakes.Exists(w => w.Id.Length > 0)) await engine.PingAsync(ct); // throws when Docker is away
        if (!_dockerUp)
        {
            SetDockerUp(true);
            _nextReconcile = DateTime.MinValue; // events may have been missed: list everything
            log.LogInformation("agent {Node}: Docker answers; reconciling every container", options.Node);
        }
        var changed = await RefreshContainersAsync(wakes, ct);
        try
        {
            await SyncRegistryAsync(ct);
        }
        finally
        {
            // After the write: the log shipper's and the checks' reactions never come before the status.
            if (changed)
            {
                ContainersChanged?.Invoke();
                WakeChecks(); // a container (re)started: its first check need not wait for the next round
            }
        }
    }

    /// <summary>
    /// Writes the round's state to etcd, waiting for it up to one interval. A write that takes longer (etcd
    /// slow or away: each attempt waits for the request timeout) goes on in the background while the
    /// following rounds keep watching Docker and checking; its failure surfaces in the round after it ends.
    /// </summary>
    private async Task SyncRegistryAsync(CancellationToken ct)
    {
        if (_writing is { IsCompleted: false }) return;
        if (_writing is { } finished)
        {
            _writing = null;
            await finished; // rethrows what the last background write met
        }
        var write = WriteRegistryAsync(ct);
        if (await Task.WhenAny(write, Task.Delay(options.Interval, ct)) != write)
        {
            _writing = write;
            return;
        }
        await write;
    }

    /// <summary>
    /// The containers again: those the events named, and every one when a full listing (started when a reconcile is
    /// due, in the background: it inspects each container) has come back. A container known to run whose only
    /// event is <c>die</c> is taken as stopped without asking Docker (the event says so, and a stopped container has
    /// no addresses); any other event is inspected. The listing is the truth but for containers with events since
    /// it began, whose event-time state is newer.
    /// </summary>
    private async Task<bool> RefreshContainersAsync(List<Wake> wakes, CancellationToken ct)
    {
        var died = new Dictionary<string, bool>(StringComparer.Ordinal); // id → only die events: no inspect needed
        var full = DateTime.UtcNow >= _nextReconcile;
        foreach (var w in wakes)
            if (w == FullReconcile) full = true;
            else if (w.Id.Length > 0) died[w.Id] = w.Action == "die" && died.GetValueOrDefault(w.Id, true);
        var before = _containers;
        var b = _containers.ToBuilder();
        foreach (var (id, onlyDied) in died)
        {
            if (onlyDied && b.TryGetValue(id, out var known))
                b[id] = known with { Running = false, Pid = 0, Addresses = Stopped, Addresses6 = Stopped };
            else if (await engine.InspectAsync(id, ct) is { } c) b[c.Id] = c;
            else b.Remove(id);
            if (_listing is not null) _eventsWhileListing.Add(id);
        }
        if (_listing is { IsCompleted: true } listed)
        {
            _listing = null;
            _nextReconcile = DateTime.UtcNow + options.ReconcileInterval;
            var list = await listed; // rethrows what Docker said (away: the round fails as any Docker call would)
            var known = b.ToImmutable();
            b.Clear();
            foreach (var c in list)
                if (!_eventsWhileListing.Contains(c.Id)) b[c.Id] = c;
            foreach (var id in _eventsWhileListing)
                if (known.TryGetValue(id, out var c)) b[id] = c;
            _eventsWhileListing.Clear();
        }
        if (_listing is not null && full) _listAgain = true; // e.g. the event stream broke while listing: list once more after it
        else if (_listing is null && (full || _listAgain))
        {
            _listAgain = false;
            _nextReconcile = DateTime.MaxValue; // set again when the listing is in
            // In the background: a Docker event is never held up behind a listing of every container.
            _listing = Task.Run(() => engine.ListEdgeEruAsync(ct), ct);
            _ = _listing.ContinueWith(_ => _wake.Writer.TryWrite(ReconcileDone), TaskScheduler.Default);
        }
        _containers = b.ToImmutable();
        foreach (var gone in _health.Keys.Where(id => !_containers.ContainsKey(id))) _health.TryRemove(gone, out _);
        _metrics.Containers(_containers.Values.Count(c => c.Running), _containers.Values.Count(c => !c.Running));
        return !ReferenceEquals(before, _containers) && !Same(before, _containers);
    }

    private static readonly IReadOnlyDictionary<string, string> Stopped = ImmutableDictionary<string, string>.Empty;

    private static bool Same(ImmutableDictionary<string, ContainerState> a, ImmutableDictionary<string, ContainerState> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var c) && c.Running == kv.Value.Running
            && c.StartedAt == kv.Value.StartedAt && c.Pid == kv.Value.Pid);

    /// <summary>
    /// Whether this cluster's registry records the container (as of the last snapshot). An engine may run
    /// EdgeEru containers of another registry prefix, or one whose record is not written yet.
    /// </summary>
    public bool IsRecorded(string containerId) => registry().Workloads.TryGetValue(containerId, out var view) && view.Record is not null;

    /// <summary>
    /// Checks every interval (and at once when a container starts), whether or not etcd or Docker is there. A verdict
    /// or reason that changes wakes the writer: checks and statuses never wait for each other.
    /// </summary>
    private async Task CheckLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await RunDueChecksAsync(ct);
                await _checkNow.WaitAsync(options.Interval, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogError(ex, "agent {Node}: check round failed", options.Node);
                try
                {
                    await Task.Delay(options.Interval, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void WakeChecks()
    {
        try
        {
            if (_checkNow.CurrentCount == 0) _checkNow.Release();
        }
        catch (SemaphoreFullException)
        {
            // Woken already (a background registry write and the loop may both ask).
        }
    }

    /// <summary>Runs every due check at once (each bounded by its timeout).</summary>
    private async Task RunDueChecksAsync(CancellationToken ct)
    {
        var snapshot = registry();
        var now = DateTimeOffset.UtcNow;
        var checks = new List<Task>();
        foreach (var c in Containers.Values)
        {
            if (!c.Running || !snapshot.Workloads.TryGetValue(c.Id, out var view) || view.Record is not { } w) continue;
            var h = _health.AddOrUpdate(c.Id, _ => new HealthState(Started(c, w)),
                (_, old) => old.StartedAt == Started(c, w) ? old : new HealthState(Started(c, w)));
            if (!h.IsDue(w.Healthcheck, now)) continue;
            checks.Add(CheckAsync(c, w, h, ct));
        }
        await Task.WhenAll(checks);
    }

    private static DateTimeOffset Started(ContainerState c, Workload w) => c.StartedAt == default ? w.CreatedAt : c.StartedAt;

    private async Task CheckAsync(ContainerState c, Workload w, HealthState h, CancellationToken ct)
    {
        var address = c.Addresses.Values.FirstOrDefault() ?? c.Addresses6.Values.FirstOrDefault(); // IPv6-only: check over IPv6
        var problem = address is null ? "no address" : await HealthProbe.CheckAsync(w, address, ct);
        if (w.Healthcheck is not null) _metrics.Check(problem is null);
        var (reason, first) = (h.Reason, h.LastCheck == DateTimeOffset.MinValue);
        var verdict = h.Observe(problem, w.Healthcheck, DateTimeOffset.UtcNow);
        if (verdict is not null || h.Reason != reason || first) _wake.Writer.TryWrite(HealthChanged); // the status changes
        switch (verdict)
        {
            case true:
                log.LogInformation("workload {Name} healthy", w.Name);
                break;
            case false:
                log.LogWarning("workload {Name} unhealthy: {Reason}", w.Name, problem);
                break;
        }
    }

    /// <summary>Heartbeat and every status that differs from what was written under the current lease.</summary>
    private async Task WriteRegistryAsync(CancellationToken ct)
    {
        // A lost lease is revoked only once every key is written again under the new one: the keys move from one
        // lease to the other without a moment of absence (if etcd has not expired the old one already).
        RegistryLease? retiring = null;
        if (_lease is null || _lease.IsLost)
        {
            if (_lease is not null && _lease.Id != _lostLeaseLogged) // once per lease, not once per round while etcd is away
            {
                log.LogWarning("agent {Node}: lease {Lease} lost; granting a new one and writing every key again",
                    options.Node, _lease.Id);
                _lostLeaseLogged = _lease.Id;
            }
            var fresh = await store.GrantLeaseAsync(options.LeaseTtl, ct: ct);
            (retiring, _lease) = (_lease, fresh);
            _written.Clear(); // a new lease: every key must be written again
            _heartbeat = false;
        }
        try
        {
            await WriteKeysAsync(ct);
        }
        finally
        {
            if (retiring is not null) await retiring.DisposeAsync();
        }
    }

    private async Task WriteKeysAsync(CancellationToken ct)
    {
        var lease = _lease!;
        if (!_heartbeat)
        {
            await store.PutAsync(Kinds.NodeStatus, new NodeStatus
            {
                Node = options.Node, HeartbeatAt = DateTimeOffset.UtcNow, AgentVersion = options.AgentVersion,
                DockerVersion = (await engine.InfoAsync(ct)).Version, AgentUrl = options.AgentUrl,
            }, lease.Id, ct);
            _metrics.Write("node-status");
            Volatile.Write(ref _heartbeat, true);
            log.LogInformation("agent {Node}: heartbeat under lease {Lease}", options.Node, lease.Id);
        }
        if (!_etcdUp) log.LogInformation("agent {Node}: etcd answers again", options.Node);
        SetEtcdUp(true);

        var snapshot = registry();
        if (snapshot.Revision == 0) return; // the watcher has not seen the registry yet: no record is known, nothing can be judged
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var toCheck = false;
        foreach (var c in _containers.Values)
        {
            // Never a status without a record.
            if (!snapshot.Workloads.TryGetValue(c.Id, out var view) || view.Record is not { } w) continue;
            seen.Add(c.Id);
            var h = c.Running ? _health.GetValueOrDefault(c.Id) : null;
            // A run's status waits for its first check (which wakes this writer): before it there is nothing to say, and
            // a restarted container's health would still be its last run's.
            if (c.Running && (h is null || h.StartedAt != Started(c, w) || h.LastCheck == DateTimeOffset.MinValue))
            {
                toCheck = true;
                continue;
            }
            var healthy = h?.Healthy == true;
            var status = new WorkloadStatus
            {
                Id = c.Id, Node = options.Node, Running = c.Running, Healthy = healthy,
                Addresses = StringMap.From(c.Addresses),
                Addresses6 = c.Addresses6.Count == 0 ? null : StringMap.From(c.Addresses6), // absent, not {}, without IPv6
                Reason = healthy ? null : !c.Running ? "not running" : h?.Reason ?? "not checked yet",
                CheckedAt = DateTimeOffset.UtcNow,
            };
            // Only on change: a steady node costs etcd nothing but its lease keep-alive.
            if (_written.TryGetValue(c.Id, out var before) && Same(before, status)) continue;
            await store.PutAsync(Kinds.WorkloadStatus, status, lease.Id, ct);
            _metrics.Write("workload-status");
            _written[c.Id] = status;
        }
        if (toCheck) WakeChecks();
        foreach (var gone in _written.Keys.Where(id => !seen.Contains(id)).ToList())
        {
            await store.DeleteAsync(Kinds.WorkloadStatus, gone, ct);
            _metrics.Write("delete");
            _written.Remove(gone);
        }
    }

    private static bool Same(WorkloadStatus a, WorkloadStatus b) =>
        a.Running == b.Running && a.Healthy == b.Healthy && a.Reason == b.Reason && a.Addresses.Equals(b.Addresses)
        && Equals(a.Addresses6, b.Addresses6);

    /// <summary>
    /// Follows Docker's events; each one wakes the loop for that container. A broken stream is reopened, and a full reconcile
    /// covers the gap.
    /// </summary>
    private async Task FollowEventsAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var connected = DateTime.UtcNow;
                _wake.Writer.TryWrite(FullReconcile);
                await engine.FollowEventsAsync(e =>
                {
                    _metrics.Event(e.Action);
                    if (Changes(e.Action)) _wake.Writer.TryWrite(new Wake(e.Id, e.Action));
                }, ct);
                if (DateTime.UtcNow - connected > TimeSpan.FromSeconds(10)) backoff = TimeSpan.FromMilliseconds(500);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                log.LogDebug("agent {Node}: Docker event stream broke: {Error}", options.Node, ex.Message);
            }
            try
            {
                await Task.Delay(backoff, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.DockerBackoffMax.Ticks));
        }
    }

    /// <summary>
    /// Whether an event can change what the agent reports. <c>kill</c> and <c>oom</c> come before the <c>die</c> that
    /// matters (or the process lives on); execs, attaches and copies leave the container as it was. Inspecting for them
    /// would only put a round trip before the die.
    /// </summary>
    private static bool Changes(string action) =>
        !action.StartsWith("exec_", StringComparison.Ordinal)
        && action is not ("kill" or "oom" or "attach" or "detach" or "resize" or "top" or "archive-path" or "extract-to-dir"
            or "copy" or "export" or "commit");

    /// <summary>Waits for a background write to end (its outcome no longer matters: Docker is away and the heartbeat goes).</summary>
    private async Task DrainWriteAsync()
    {
        if (_writing is null) return;
        try
        {
            await _writing;
        }
        catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException || IsDockerFault(ex, CancellationToken.None))
        {
        }
        _writing = null;
    }

    private void SetDockerUp(bool up)
    {
        Volatile.Write(ref _dockerUp, up);
        _metrics.DockerUp(up);
    }

    private void SetEtcdUp(bool up)
    {
        Volatile.Write(ref _etcdUp, up);
        _metrics.EtcdUp(up);
    }

    private async Task StopHeartbeatAsync()
    {
        Volatile.Write(ref _heartbeat, false);
        try
        {
            await store.DeleteAsync(Kinds.NodeStatus, options.Node);
            _metrics.Write("delete");
        }
        catch (Grpc.Core.RpcException)
        {
            // etcd away too: the key goes when the lease expires, unless Docker is back first.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested) return;
        await _disposed.CancelAsync();
        await _loopDone;
        if (_writing is not null)
        {
            try
            {
                await _writing;
            }
            catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException
                || IsDockerFault(ex, CancellationToken.None))
            {
            }
            _writing = null;
        }
        if (_lease is not null) await _lease.DisposeAsync(); // clean shutdown: heartbeat and statuses go at once
        _lease = null;
    }
}
