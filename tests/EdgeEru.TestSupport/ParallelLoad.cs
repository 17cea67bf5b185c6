using System.Diagnostics;

namespace EdgeEru.TestSupport;

/// <summary>Clients that send one request after another while something happens (a fault, a replace): how many passed and failed.</summary>
public static class ParallelLoad
{
    /// <summary>
    /// <paramref name="clients"/> loops run <paramref name="request"/> while <paramref name="during"/> runs, and for at least
    /// <paramref name="atLeast"/>; a request that throws an HTTP error, a timeout or a failed assertion counts as failed (the
    /// first five said to <paramref name="log"/>). Bounded in count (200,000 a client) and time.
    /// </summary>
    public static async Task<(int Ok, int Failed)> RunAsync(Func<Task> request, Func<Task> during, TimeSpan atLeast,
        Action<string> log, int clients = 4)
    {
        var ok = 0;
        var failed = 0;
        using var stop = new CancellationTokenSource();
        var loops = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            for (var n = 0; n < 200_000 && !stop.IsCancellationRequested; n++)
            {
                try
                {
                    await request();
                    Interlocked.Increment(ref ok);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException)
                {
                    if (Interlocked.Increment(ref failed) <= 5) log("failed request: " + ex.Message);
                }
            }
        })).ToList();
        var started = Stopwatch.StartNew();
        try
        {
            await during();
            if (started.Elapsed < atLeast) await Task.Delay(atLeast - started.Elapsed);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(loops);
        }
        return (ok, failed);
    }
}
