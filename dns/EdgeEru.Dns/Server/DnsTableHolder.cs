using System.Diagnostics;
using EdgeEru.Dns.Tables;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Server;

/// <summary>
/// Keeps the current <see cref="DnsTable"/>: rebuilt (incrementally) from each registry snapshot on a
/// task of its own, so the watcher never waits on DNS; bursts of snapshots coalesce into one build.
/// </summary>
internal sealed class DnsTableHolder(RegistryWatcher watcher, IOptions<DnsOptions> options, DnsMetrics metrics, ILogger<DnsTableHolder> log)
    : BackgroundService
{
    private readonly SemaphoreSlim _signal = new(0, 1);
    private RegistrySnapshot? _pending;
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
            if (_signal.CurrentCount == 0)
            {
                try
                {
                    _signal.Release();
                }
                catch (SemaphoreFullException)
                {
                    // Already signalled: the build will take the newest snapshot.
                }
            }
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
            var snapshot = Interlocked.Exchange(ref _pending, null);
            if (snapshot is null || (_table is not null && !snapshot.Supersedes(_table.Snapshot))) continue;
            var started = Stopwatch.GetTimestamp();
            try
            {
                var table = DnsTableBuilder.Build(options.Value, snapshot, _table);
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

    public override void Dispose()
    {
        _signal.Dispose();
        base.Dispose();
    }
}
