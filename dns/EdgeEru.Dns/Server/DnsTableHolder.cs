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
    private RegistrySnapshot? _pending;
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
            Volatile.Write(ref _pending, s);
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
            var pending = Interlocked.Exchange(ref _pending, null);
            var remotesChanged = Interlocked.Exchange(ref _remotesChanged, 0) == 1;
            var snapshot = pending is not null && (_table is null || pending.Supersedes(_table.Snapshot)) ? pending : null;
            if (snapshot is null && remotesChanged) snapshot = _table?.Snapshot; // another datacenter changed: same local one
            if (snapshot is null) continue;
            var started = Stopwatch.GetTimestamp();
            try
            {
                var table = DnsTableBuilder.Build(options.Value, snapshot, _table, remotes.Current);
                Volatile.Write(ref _table, table);
                metrics.TableBuilt(table, Stopwatch.GetElapsedTime(started));
                if (_firstTable.TrySetResult())
                    log.LogInformation("dns serving registry revision {Revision}: {Services} services in {Zones} zones",
                        snapshot.Revision, table.Zones.Sum(z => z.Services.Count), table.Zones.Length);
            }
            catch (Exception ex)
            {
                // Keep answering from the last table; say why the new one was not built.
                log.LogError(ex, "dns table for registry revision {Revision} failed; still serving revision {Serving}",
                    snapshot.Revision, _table?.Snapshot.Revision);
            }
        }
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
