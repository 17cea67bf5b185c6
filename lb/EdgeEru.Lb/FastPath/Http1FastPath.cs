using System.Collections.Concurrent;
using System.Net.Sockets;
using EdgeEru.Lb.Routing;
using EdgeEru.Lb.Transport;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace EdgeEru.Lb.FastPath;

/// <summary>
/// The HTTP/1.1 fast path (<c>Lb:Http1Lane</c>, on by default with the epoll transport): on the proxy's plain-HTTP
/// ports, the commonest request, a bodyless GET or HEAD to a domain whose backends speak HTTP/1.1, is answered
/// on the event loop from the client's bytes to the workload's answer, without Kestrel's per-request objects.
/// The rule graph, the backend pools, the forward loop, the upstream exchange, the metrics and the access log
/// are the ones the Kestrel way uses, so a request gets the same answer either way. A connection whose request
/// is anything else (see <see cref="FastPathRequest"/>), or whose domain needs cookie affinity or HTTP/2 to its
/// workloads, goes to Kestrel with the bytes it sent, and stays there. Nothing outside this folder depends on
/// it: without its registration in <see cref="LbHost"/>, every request goes through Kestrel.
/// </summary>
internal sealed class Http1FastPath : IHostedService, IAcceptHook, IDisposable
{
    // The metric names keep the fast path's first name, "the lane", so dashboards and alerts stay valid.
    private static readonly Prometheus.Counter HandedOver = Prometheus.Metrics.CreateCounter("eru_lb_http1_lane_handovers_total",
        "Connections the HTTP/1.1 fast path gave to Kestrel (a request it leaves to Kestrel: a body, an upgrade, HTTP/1.0 or 2, ...).");
    private static readonly Prometheus.Counter Requests = Prometheus.Metrics.CreateCounter("eru_lb_http1_lane_requests_total",
        "Requests the HTTP/1.1 fast path answered itself.");

    private readonly HashSet<int> _ports;
    private readonly ConcurrentDictionary<FastPathConnection, byte> _open = new();
    private readonly Timer _sweeper;

    public Http1FastPath(IConfiguration config, RoutesHolder routes, AccessLog.AccessLogWriter accessLog,
        IOptions<KestrelServerOptions> kestrel, IHostApplicationLifetime lifetime, ILogger<Http1FastPath> log)
    {
        Routes = routes;
        AccessLog = accessLog;
        Log = log;
        _ports = Listeners.Ports(config["Lb:Urls"] ?? LbHost.DefaultProxyUrls);
        var limits = kestrel.Value.Limits;
        KeepAliveMs = (long)limits.KeepAliveTimeout.TotalMilliseconds;
        HeadersMs = (long)limits.RequestHeadersTimeout.TotalMilliseconds;
        // Without a minimum rate (null), a stalled client still goes after the keep-alive timeout.
        MinSendBytesPerSecond = Math.Max(1, (long)(limits.MinResponseDataRate?.BytesPerSecond ?? 1));
        MinSendGraceMs = (long)(limits.MinResponseDataRate?.GracePeriod ?? limits.KeepAliveTimeout).TotalMilliseconds;
        Limits = new HeadLimits(limits.MaxRequestLineSize, limits.MaxRequestHeadersTotalSize, limits.MaxRequestHeaderCount);
        lifetime.ApplicationStopping.Register(() => Draining = true);
        _sweeper = new Timer(_ => Sweep(), null, 1000, 1000);
    }

    public RoutesHolder Routes { get; }
    public AccessLog.AccessLogWriter AccessLog { get; }
    public ILogger Log { get; }
    /// <summary>Kestrel's limits, so a connection waits as long here as it would in Kestrel.</summary>
    public long KeepAliveMs { get; }
    public long HeadersMs { get; }
    public long MinSendBytesPerSecond { get; }
    public long MinSendGraceMs { get; }
    /// <summary>Kestrel's size limits: a head beyond them is Kestrel's to refuse.</summary>
    public HeadLimits Limits { get; }
    /// <summary>The host is stopping: idle connections close, busy ones after their answer.</summary>
    public bool Draining { get; private set; }

    /// <summary>Connections accepted on the proxy's plain-HTTP ports start here.</summary>
    public bool Takes(int port) => _ports.Contains(port);

    public void Accept(Socket accepted, HandOver handOver)
    {
        if (Draining)
        {
            accepted.Dispose();
            return;
        }
        var connection = new FastPathConnection(this, accepted, handOver);
        _open.TryAdd(connection, 0);
        EpollConnection.Open.Inc();
        connection.Run();
    }

    internal void Ended(FastPathConnection connection, bool handedOver)
    {
        _open.TryRemove(connection, out _);
        EpollConnection.Open.Dec();
        if (handedOver) HandedOver.Inc();
    }

    internal static void Answered() => Requests.Inc();

    /// <summary>
    /// Whether the fast path may answer for this graph: every backend of it speaks HTTP/1.1 to its workloads and
    /// keeps no cookie affinity (those are the Kestrel way's). Decided before the graph is walked, so a
    /// request is never walked (and counted) twice.
    /// </summary>
    public static bool CanServe(RuleGraph graph) => graph.EveryBackendSpeaksHttp1 && !graph.SomeBackendKeepsAffinity;

    public void Dispose() => _sweeper.Dispose();

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Before Kestrel stops: idle connections close now, busy ones after their answer (with Connection: close),
    /// and the host waits for them as Kestrel waits for its own (until the shutdown timeout).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Draining = true;
        Sweep();
        while (!_open.IsEmpty && !cancellationToken.IsCancellationRequested)
        {
            try { await Task.Delay(20, cancellationToken); }
            catch (OperationCanceledException) { break; }
            Sweep();
        }
    }

    // Every second: a connection waiting for a request longer than Kestrel would wait is closed; while the
    // host stops, idle ones are closed at once.
    private void Sweep()
    {
        var now = Environment.TickCount64;
        foreach (var c in _open.Keys) c.Expire(now, Draining);
    }
}
