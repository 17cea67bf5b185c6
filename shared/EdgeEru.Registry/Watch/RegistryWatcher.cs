using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Mvccpb;

namespace EdgeEru.Registry.Watch;

/// <summary>
/// Follows the registry: lists the whole prefix at one revision, then watches from the next, and
/// publishes an immutable <see cref="RegistrySnapshot"/> after every batch of changes. When etcd is
/// away it keeps the last snapshot and retries; when its revision was compacted away it lists again.
/// </summary>
public sealed class RegistryWatcher : IAsyncDisposable
{
    private readonly EtcdConnection _etcd;
    private readonly RegistryStore _store;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _subscribersLock = new();
    private Action<RegistrySnapshot>[] _subscribers = [];
    private RegistrySnapshot _current = RegistrySnapshot.Empty;
    private Task? _loop;
    private long _outOfTouchSinceTicks = DateTime.UtcNow.Ticks; // out of touch until the first watch is up
    private long _relists;
    private long _skipped;
    private long _observedRevision;
    private readonly Meter _meter;
    private readonly Histogram<double> _applySeconds;
    private bool _everInTouch;
    private readonly HeldDeletions _held;
    private readonly object _applyLock = new(); // the watch loop and the grace timer both publish
    private readonly Timer _releaseTimer;

    /// <param name="datacenter">For a watcher of another datacenter's registry: tags its metrics apart from the local one's.</param>
    public RegistryWatcher(EtcdConnection etcd, ILogger<RegistryWatcher> log, string? datacenter = null)
    {
        _etcd = etcd;
        _store = new RegistryStore(etcd);
        _log = log;
        _held = new HeldDeletions(etcd.Options.LivenessGrace);
        _releaseTimer = new Timer(_ => ReleaseDue(), null, Timeout.Infinite, Timeout.Infinite);
        // Exported by each service's /metrics: the Prometheus adapter joins meter and instrument names, so
        // meter "eru.registry" + instrument "revision" is eru_registry_revision.
        _meter = new Meter(MeterName, null, datacenter is null
            ? [new("prefix", _store.Keys.Prefix)]
            : [new("prefix", _store.Keys.Prefix), new("datacenter", datacenter)]);
        _meter.CreateObservableGauge("revision", () => Current.Revision, description: "etcd revision of the published snapshot");
        _meter.CreateObservableGauge("out_of_touch", () => OutOfTouchFor.TotalSeconds, "s",
            "time without a working watch on etcd (0 when in touch)");
        _meter.CreateObservableCounter("relists", () => Relists,
            description: "full lists of the registry (first one, compactions, cancelled watches)");
        _meter.CreateObservableCounter("skipped_values", () => SkippedValues, description: "registry values skipped as unreadable");
        _meter.CreateObservableGauge("live_workloads", () => Current.LiveCount, description: "live workloads in the snapshot");
        _applySeconds = _meter.CreateHistogram<double>("apply_duration", "s", "time to apply one watch batch to the snapshot");
        _meter.CreateObservableCounter("etcd_failovers", () => _etcd.Failovers,
            description: "moves from one etcd member to the next (a member dead, frozen or without a leader)");
        _meter.CreateObservableGauge("held_deletions", () => HeldCount,
            description: "heartbeats and statuses whose lease went, still served for Registry:LivenessGrace");
        _meter.CreateObservableCounter("held_deletions_rewritten", () => _held.Rewritten,
            description: "held heartbeats and statuses written again within the grace (a registry flap that nobody saw)");
        _meter.CreateObservableCounter("held_deletions_applied", () => _held.Applied,
            description: "held heartbeats and statuses not written again within the grace (gone for good)");
    }

    public const string MeterName = "eru.registry";

    /// <summary>The latest snapshot (Empty until the first list completes).</summary>
    public RegistrySnapshot Current => Volatile.Read(ref _current);

    /// <summary>Completes when the first full snapshot is published.</summary>
    public Task Ready => _ready.Task;

    /// <summary>The newest revision etcd confirmed this watcher has seen (progress notifications included).</summary>
    public long ObservedRevision => Interlocked.Read(ref _observedRevision);

    /// <summary>How long the watcher has been without a working watch (zero when in touch).</summary>
    public TimeSpan OutOfTouchFor
    {
        get
        {
            var since = Interlocked.Read(ref _outOfTouchSinceTicks);
            return since == 0 ? TimeSpan.Zero : DateTime.UtcNow - new DateTime(since, DateTimeKind.Utc);
        }
    }

    public bool InTouch => Interlocked.Read(ref _outOfTouchSinceTicks) == 0;

    /// <summary>Full lists done (the first one, then one per compaction or cancelled watch).</summary>
    public long Relists => Interlocked.Read(ref _relists);

    /// <summary>Deletions of lease-held keys not yet in force (see <see cref="RegistryOptions.LivenessGrace"/>).</summary>
    public int HeldCount
    {
        get
        {
            lock (_applyLock) return _held.Count;
        }
    }

    /// <summary>Values skipped because they could not be decoded.</summary>
    public long SkippedValues => Interlocked.Read(ref _skipped);

    /// <summary>
    /// Calls <paramref name="onSnapshot"/> with each new snapshot, on the watcher's loop: keep it short.
    /// It is called at once with the current one if that is already built.
    /// </summary>
    public IDisposable Subscribe(Action<RegistrySnapshot> onSnapshot)
    {
        lock (_subscribersLock) _subscribers = [.. _subscribers, onSnapshot];
        if (_ready.Task.IsCompleted) onSnapshot(Current);
        return new Subscription(this, onSnapshot);
    }

    public void Start()
    {
        _loop ??= Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>Waits until a snapshot at or past <paramref name="revision"/> is published.</summary>
    public async Task<RegistrySnapshot> WaitForRevisionAsync(long revision, CancellationToken ct = default)
    {
        var tcs = new TaskCompletionSource<RegistrySnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sub = Subscribe(s =>
        {
            if (s.Revision >= revision) tcs.TrySetResult(s);
        });
        using var reg = ct.Register(() => tcs.TrySetCanceled(ct));
        var current = Current;
        if (_ready.Task.IsCompleted && current.Revision >= revision) return current;
        return await tcs.Task;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var needList = true;
        var backoff = TimeSpan.FromMilliseconds(100);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (needList)
                {
                    await ListAsync(ct);
                    needList = false;
                }
                needList = await WatchAsync(() => backoff = TimeSpan.FromMilliseconds(100), ct);
            }
            catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or RpcException)
            {
                return;
            }
            catch (Exception ex) when (!ct.IsCancellationRequested && ex is not (RpcException or HttpRequestException or IOException))
            {
                // A bug of ours must not leave a follower serving one snapshot forever: say so, list again.
                MarkOutOfTouch();
                _log.LogError(ex, "registry watcher failed; keeping snapshot at revision {Revision}, listing again in {Backoff}ms",
                    Current.Revision, backoff.TotalMilliseconds);
                needList = true;
                try
                {
                    await Task.Delay(backoff, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = TimeSpan.FromMilliseconds(Math.Min(5000, backoff.TotalMilliseconds * 2));
            }
            catch (Exception ex) when (ex is RpcException or HttpRequestException or IOException)
            {
                MarkOutOfTouch();
                _log.LogWarning("registry watch on {Endpoint} failed ({Error}); keeping snapshot at revision {Revision}, "
                    + "out of touch for {Seconds:F1}s, retrying in {Backoff}ms",
                    _etcd.CurrentEndpoint, ex is RpcException r ? $"{r.StatusCode}: {r.Status.Detail}" : ex.Message,
                    Current.Revision, OutOfTouchFor.TotalSeconds, backoff.TotalMilliseconds);
                _etcd.Failover();
                try
                {
                    await Task.Delay(backoff, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = TimeSpan.FromMilliseconds(Math.Min(5000, backoff.TotalMilliseconds * 2));
            }
        }
    }

    private async Task ListAsync(CancellationToken ct)
    {
        // Pages are decoded on the thread pool while the next page is fetched, and a first list joins them into the
        // snapshot in key order as they come: decoding and indexing run under the I/O, not after the last page. A
        // list after the first builds at the end, as it must also hold what it lacks of the last snapshot.
        var first = Current.Revision == 0;
        var build = first ? new FullBuild() : null;
        var state = first ? null : new List<RegistryChange>();
        var pages = Channel.CreateUnbounded<Task<List<RegistryChange>>>(new UnboundedChannelOptions { SingleReader = true });
        var keys = 0;
        var consume = Task.Run(async () =>
        {
            await foreach (var page in pages.Reader.ReadAllAsync(ct))
            {
                var changes = await page;
                foreach (var change in changes) ReportProblem(change);
                if (build is not null) build.Add(changes);
                else state!.AddRange(changes);
            }
        }, ct);
        long revision;
        try
        {
            revision = await _store.RangePagesAsync(_store.Keys.Root, 0, page =>
            {
                var kvs = page.ToArray();
                keys += kvs.Length;
                pages.Writer.TryWrite(Task.Run(() => Decode(kvs), ct));
            }, ct);
        }
        finally
        {
            pages.Writer.TryComplete();
        }
        await consume;
        RegistrySnapshot snapshot;
        lock (_applyLock)
        {
            var kept = 0;
            if (build is not null)
            {
                snapshot = build.Finish(revision);
            }
            else
            {
                // Lease-held keys the previous snapshot had and this list lacks are held like deleted ones.
                kept = _held.HoldMissing(Current, state!);
                snapshot = RegistrySnapshot.Build(state!, revision);
            }
            if (kept > 0)
                _log.LogWarning("registry list lacks {Count} heartbeats and statuses of the last snapshot; serving them for {Grace}s more",
                    kept, _held.Grace.TotalSeconds);
            Publish(snapshot);
            ScheduleRelease();
        }
        Interlocked.Increment(ref _relists);
        _log.LogInformation(
            "registry listed at revision {Revision}: {Keys} keys, {Workloads} workloads, {Live} live, {Problems} unreadable",
            revision, keys, snapshot.Workloads.Count, snapshot.LiveCount, snapshot.Problems.Count);
    }

    private List<RegistryChange> Decode(KeyValue[] kvs)
    {
        var changes = new List<RegistryChange>(kvs.Length);
        foreach (var kv in kvs)
            if (RegistryChange.TryDecode(_store.Keys, kv, false, out var change)) changes.Add(change);
        return changes;
    }

    /// <summary>Runs one watch stream until it breaks; returns true when a full list is needed first.</summary>
    private async Task<bool> WatchAsync(Action onCreated, CancellationToken ct)
    {
        var from = Current.Revision + 1;
        var prefix = ByteString.CopyFromUtf8(_store.Keys.Root);
        using var call = _etcd.Watch.Watch(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest
            {
                Key = prefix,
                RangeEnd = ByteString.CopyFrom(RegistryKeys.RangeEnd(prefix.Span)),
                StartRevision = from,
                ProgressNotify = true,
                Fragment = true,
            },
        }, ct);

        var pending = new List<Mvccpb.Event>();
        while (await call.ResponseStream.MoveNext(ct))
        {
            var r = call.ResponseStream.Current;
            if (r.CompactRevision != 0)
            {
                _log.LogWarning("registry revision {From} was compacted (compact revision {Compact}); listing the registry again",
                    from, r.CompactRevision);
                return true;
            }
            if (r.Canceled)
            {
                _log.LogWarning("registry watch cancelled by etcd: {Reason}; listing again", r.CancelReason);
                return true;
            }
            if (r.Created)
            {
                MarkInTouch();
                onCreated();
                _log.LogInformation("registry watch on {Endpoint} from revision {From}", _etcd.CurrentEndpoint, from);
                continue;
            }
            pending.AddRange(r.Events);
            if (r.Fragment) continue;
            if (pending.Count == 0)
            {
                // Progress notification: everything up to the header revision has been sent.
                UpdateObserved(r.Header.Revision);
                continue;
            }
            var changes = new List<RegistryChange>(pending.Count);
            long revision = 0;
            foreach (var ev in pending)
            {
                revision = Math.Max(revision, ev.Kv.ModRevision);
                if (!RegistryChange.TryDecode(_store.Keys, ev.Kv, ev.Type == Mvccpb.Event.Types.EventType.Delete, out var change)) continue;
                ReportProblem(change);
                changes.Add(change);
            }
            pending.Clear();
            lock (_applyLock)
            {
                var started = Stopwatch.GetTimestamp();
                var held = _held.Filter(Current, changes);
                var next = Current.Apply(changes, revision);
                _applySeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds); // before subscribers see it
                if (held > 0)
                    _log.LogInformation(
                        "registry: {Count} heartbeats and statuses deleted (lease gone?); served for {Grace}s unless written again",
                        held, _held.Grace.TotalSeconds);
                Publish(next);
                ScheduleRelease();
            }
        }
        // The server closed the stream: reconnect from where we are.
        throw new RpcException(new Status(StatusCode.Unavailable, "watch stream ended"));
    }

    /// <summary>Applies the held deletions whose grace is over (on the timer), at the snapshot's revision.</summary>
    private void ReleaseDue()
    {
        try
        {
            lock (_applyLock)
            {
                var due = _held.TakeDue();
                if (due.Count > 0)
                {
                    var current = Current;
                    var next = current.Apply(due, current.Revision);
                    _log.LogWarning(
                        "registry: {Count} heartbeats and statuses not written again within {Grace}s are gone; "
                        + "{Live} live workloads (was {Before})",
                        due.Count, _held.Grace.TotalSeconds, next.LiveCount, current.LiveCount);
                    Publish(next);
                }
                ScheduleRelease();
            }
        }
        catch (ObjectDisposedException)
        {
            // disposed while the timer fired
        }
    }

    private void ScheduleRelease()
    {
        if (_held.NextDue is { } due)
            _releaseTimer.Change(TimeSpan.FromMilliseconds(Math.Max(1, (due - Environment.TickCount64) + 1)), Timeout.InfiniteTimeSpan);
    }

    private void ReportProblem(in RegistryChange change)
    {
        if (change.Problem is null) return;
        Interlocked.Increment(ref _skipped);
        _log.LogWarning("registry value {Key} skipped: {Problem}", _store.Keys.Root + change.Kind.Segment + "/" + change.Name,
            change.Problem);
    }

    private void Publish(RegistrySnapshot snapshot)
    {
        Volatile.Write(ref _current, snapshot);
        UpdateObserved(snapshot.Revision);
        _ready.TrySetResult();
        foreach (var s in Volatile.Read(ref _subscribers))
        {
            try
            {
                s(snapshot);
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "registry snapshot subscriber failed");
            }
        }
    }

    private void UpdateObserved(long revision)
    {
        long seen;
        while (revision > (seen = Interlocked.Read(ref _observedRevision)))
            if (Interlocked.CompareExchange(ref _observedRevision, revision, seen) == seen) break;
    }

    private void MarkOutOfTouch() => Interlocked.CompareExchange(ref _outOfTouchSinceTicks, DateTime.UtcNow.Ticks, 0);

    private void MarkInTouch()
    {
        var since = Interlocked.Exchange(ref _outOfTouchSinceTicks, 0);
        var wasInTouch = _everInTouch;
        _everInTouch = true;
        if (since != 0 && wasInTouch)
            _log.LogInformation("registry back in touch after {Seconds:F1}s",
                (DateTime.UtcNow - new DateTime(since, DateTimeKind.Utc)).TotalSeconds);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }
        }
        await _releaseTimer.DisposeAsync();
        _stop.Dispose();
        _meter.Dispose();
    }

    private sealed class Subscription(RegistryWatcher watcher, Action<RegistrySnapshot> callback) : IDisposable
    {
        public void Dispose()
        {
            lock (watcher._subscribersLock) watcher._subscribers = [.. watcher._subscribers.Where(s => s != callback)];
        }
    }
}
