using System.Collections.Concurrent;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Routing;
using Prometheus;

namespace EdgeEru.Lb.Health;

/// <summary>
/// Active health checks for backends that ask for one (<c>options.health_check</c>): each destination is
/// probed with GET on its own schedule; enough failures in a row take it out of picking (like a passive
/// ejection, but until the check passes again). The agent's liveness still decides what is a destination.
/// </summary>
internal sealed class ActiveChecks(RoutesHolder routes, ILogger<ActiveChecks> log) : BackgroundService
{
    private static readonly Counter Probes = Metrics.CreateCounter("eru_lb_health_checks_total", "Active health check probes by result.",
        new CounterConfiguration { LabelNames = ["result"] });

    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    });
    private readonly ConcurrentDictionary<Destination, byte> _running = new();
    private readonly Dictionary<Destination, long> _due = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var checks = routes.Current.Checks;
            var now = Environment.TickCount64;
            foreach (var (d, check) in checks)
            {
                if (_due.TryGetValue(d, out var at) && at > now) continue;
                _due[d] = now + check.IntervalMs;
                if (_running.TryAdd(d, 0)) _ = ProbeAsync(d, check, stoppingToken);
            }
            if (_due.Count > checks.Length) // forget destinations that left
            {
                var present = checks.Select(c => c.Destination).ToHashSet();
                foreach (var gone in _due.Keys.Where(k => !present.Contains(k)).ToList()) _due.Remove(gone);
            }
        }
    }

    private async Task ProbeAsync(Destination d, Registry.Model.LbActiveCheck check, CancellationToken ct)
    {
        string? problem = null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(check.TimeoutMs);
            using var resp = await _http.GetAsync(d.Prefix.TrimEnd('/') + check.Path, HttpCompletionOption.ResponseHeadersRead,
                timeout.Token);
            if ((int)resp.StatusCode >= 400) problem = $"GET {check.Path}: {(int)resp.StatusCode}";
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            problem = $"GET {check.Path}: no answer in {check.TimeoutMs} ms";
        }
        catch (HttpRequestException ex)
        {
            problem = $"GET {check.Path}: {ex.Message}";
        }
        catch (OperationCanceledException)
        {
            return; // stopping
        }
        finally
        {
            _running.TryRemove(d, out _);
        }
        Probes.WithLabels(problem is null ? "pass" : "fail").Inc();
        if (d.RecordCheck(problem is null, check.UnhealthyAfter, check.HealthyAfter))
        {
            if (d.FailsCheck)
                log.LogWarning("backend {Destination} ({Workload}) fails its health check ({Problem}): out until it passes",
                    d.Prefix, d.WorkloadId, problem);
            else log.LogInformation("backend {Destination} ({Workload}) passes its health check again: back in", d.Prefix, d.WorkloadId);
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }
}
