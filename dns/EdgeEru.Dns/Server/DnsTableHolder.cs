using System.Diagnostics;
using EdgeEru.Dns.Tables;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Server;

/// <summary>
/// Keeps the current <see cref="DnsTable"/>: rebuilt (incrementally) from each registry snapshot, the local one or
/// another datacenter's, on a task of its own, so no watcher ever waits on DNS; bursts coalesce into one build.
/// </summary>
internal sealed class DnsTableHolder(RegistryWatcher watcher, RemoteDatacenters remotes, IOptions<DnsOptions> options,
    DnsMetrics metrics, ILogger<DnsTableHolder> log)
    : BackgroundService
{
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly Lock _pendingLock = new();
    private RegistrySnapshot? _pending;
    // The services changed over the snapshots that arrived since the last build, from snapshot _changesFrom on
    // (a Generation); null when not known (a full list among them): the build then compares every service.
    private HashSet<ServiceKey>? _changes;
    private long _changesFrom = -1;
    private int _remotesChanged;
    private DnsTable? _table;
    private readonly TaskCompletionSource _firstTable = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public DnsTable? Current => Volatile.Read(ref _table);

    /// <summary>Completes when the first table is built (the server answers SERVFAIL before that).</summary>
    public Task Ready => _firstTable.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var sub = watcher.Subscribe(s =>
        {
            lock (_pendingLock)
            {
                if (_changesFrom == -1) (_changesFrom, _changes) = (s.Parent, []);
                if (s.ChangedServices is null) _changes = null;
                else _changes?.UnionWith(s.ChangedServices);
                _pending = s;
            }
            Signal();
        });
        using var remoteSub = remotes.Subscribe(() =>
        {
            Volatile.Write(ref _remotesChanged, 1);
            Signal();
        });
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            RegistrySnapshot? pending;
            IReadOnlySet<ServiceKey>? changed;
            lock (_pendingLock)
            {
                (pending, _pending) = (_pending, null);
                changed = _table is not null && _changesFrom == _table.Snapshot.Generation ? _changes : null;
                (_changesFrom, _changes) = (-1, null);
            }
            var remotesChanged = Interlocked.Exchange(ref _remotesChanged, 0) == 1;
            var snapshot = pending is not null && (_table is null || pending.Supersedes(_table.Snapshot)) ? pending : null;
            if (snapshot is null && remotesChanged) snapshot = _table?.Snapshot; // another datacenter changed: same local one
            if (snapshot is null) continue;
            var started = Stopwatch.GetTimestamp();
            try
            {
                // Changes are known only for the pending snapshot over the one the table was built from.
                var table = DnsTableBuilder.Build(options.Value, snapshot, _table, remotes.Current,
                    ReferenceEquals(snapshot, pending) ? changed : null);
                var fromList = snapshot.ChangedServices is null && !ReferenceEquals(snapshot, _table?.Snapshot);
                Volatile.Write(ref _table, table);
                metrics.TableBuilt(table, Stopwatch.GetElapsedTime(started));
                if (_firstTable.TrySetResult())
                    log.LogInformation("dns serving registry revision {Revision}: {Services} services in {Zones} zones",
                        snapshot.Revision, table.Zones.Sum(z => z.Services.Count), table.Zones.Length);
                if (fromList) ReleaseListGarbage();
            }
            catch (Exception ex)
            {
                // Keep answering from the last table; say why the new one was not built.
                log.LogError(ex, "dns table for registry revision {Revision} failed; still serving revision {Serving}",
                    snapshot.Revision, _table?.Snapshot.Revision);
            }
        }
    }

    /// <summary>
    /// A full list of the registry (start, compaction, a long absence of etcd) leaves its pages, decoded values and the
    /// last table behind in the oldest generation, where a steady server's small allocations would not collect them
    /// for hours: collect them once, compacting, and hand the memory back (a pause of a few hundred ms, once per list).
    /// </summary>
    private void ReleaseListGarbage()
    {
        var before = Environment.WorkingSet;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        log.LogInformation("dns: memory after the registry list collected: working set {Before} → {After} MB",
            before >> 20, Environment.WorkingSet >> 20);
    }

    private void Signal()
    {
        if (_signal.CurrentCount != 0) return;
        try
        {
            _signal.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled: the build will take the newest snapshots.
        }
    }

    public override void Dispose()
    {
        _signal.Dispose();
        base.Dispose();
    }
}
