using EdgeEru.Registry.Watch;
using Prometheus;

namespace EdgeEru.Lb;

/// <summary>
/// Work the framework would do on every proxied request that nobody reads: turned off once per process.
/// </summary>
internal static class HotPath
{
    private static int _metricsConfigured;

    /// <summary>
    /// The web host's default host filtering (AllowedHosts) runs on every request; the LB routes by host itself
    /// (an unknown host gets the LB's 404), so the middleware only costs time.
    /// </summary>
    public static void WithoutHostFiltering(IServiceCollection services)
    {
        var filter = services.FirstOrDefault(s => s.ImplementationType?.Name == "HostFilteringStartupFilter");
        if (filter is not null) services.Remove(filter);
    }

    public static void Quiet(ILoggingBuilder logging)
    {
        // ASP.NET Core starts an Activity and a logging scope per request whenever its hosting logger is
        // enabled at any level; the LB writes its own access log, so that logger is off.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);

        // prometheus-net by default listens to every Meter and EventSource: that turns on per-request
        // histograms with tag lists in Kestrel, hosting and HttpClient. /metrics keeps the LB's own metrics,
        // the registry watcher's meter and the process metrics.
        if (Interlocked.Exchange(ref _metricsConfigured, 1) == 1) return;
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressEventCounters = true });
        Metrics.ConfigureMeterAdapter(o => o.InstrumentFilterPredicate = i => i.Meter.Name == RegistryWatcher.MeterName);
    }
}
