using Microsoft.Extensions.Logging;

namespace EdgeEru.Dev;

/// <summary>
/// Keeps one part of a local cluster running, as systemd's <c>Restart=always</c> does on a real host: when the part
/// is found not running (it crashed, or a fault test killed it), it is started again a second later, and the restart
/// is logged and counted. A frozen (SIGSTOPped) process is running: hangs are for the platform to survive, not this.
/// Disposing it, or <c>stopping</c> (a Ctrl-C reaches every process of the group at once), ends the watching only;
/// the part itself is stopped by its owner.
/// </summary>
public sealed class Supervisor : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly Task _loop;
    private int _restarts, _disposed;

    public Supervisor(string name, Func<bool> isRunning, Func<CancellationToken, Task> startAgainAsync, ILogger log,
        CancellationToken stopping = default)
    {
        Name = name;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        _loop = Task.Run(() => WatchAsync(isRunning, startAgainAsync, log, _stop.Token), CancellationToken.None);
    }

    public string Name { get; }

    public int Restarts => Volatile.Read(ref _restarts);

    private async Task WatchAsync(Func<bool> isRunning, Func<CancellationToken, Task> startAgainAsync, ILogger log, CancellationToken ct)
    {
        var backoff = TimeSpan.FromSeconds(1);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
                if (isRunning()) continue;
                log.LogWarning("{Name} is not running; starting it again in {Seconds:0.#} s", Name, backoff.TotalSeconds);
                await Task.Delay(backoff, ct); // also: a Ctrl-C that stopped it reaches the owner first
                try
                {
                    await startAgainAsync(ct);
                    Interlocked.Increment(ref _restarts);
                    log.LogInformation("{Name} started again ({Restarts} restarts)", Name, Restarts);
                    backoff = TimeSpan.FromSeconds(1);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    log.LogWarning("{Name} did not start again: {Error}", Name, ex.Message);
                    backoff = TimeSpan.FromSeconds(Math.Min(30, backoff.TotalSeconds * 2));
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
