using System.Diagnostics;
using System.Runtime.CompilerServices;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Routing;
using Yarp.ReverseProxy.Forwarder;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// The data plane: find the domain's graph, walk it, and answer (respond, redirect) or hand the request
/// to YARP's forwarder with a destination picked from the backend's live workloads.
/// </summary>
internal sealed class ProxyMiddleware(RequestDelegate next, RoutesHolder routes, IHttpForwarder forwarder, HttpMessageInvoker client,
    AccessLog.AccessLogWriter accessLog, ProxySettings proxy, ILogger<ProxyMiddleware> log)
{
    /// <summary>
    /// The connection pool to backends, one for the process (DI disposes it). With <paramref name="epoll"/>, its
    /// connections live on the epoll transport's loops, like the client side.
    /// </summary>
    public static HttpMessageInvoker CreateClient(bool epoll) => new(new SocketsHttpHandler
    {
        ConnectCallback = epoll ? Transport.EpollStream.ConnectAsync : null,
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
    });

    // Synchronous up to the answer: of the async methods on a forwarded request's way, only ForwardAsync and
    // the forwarder's own keep a state machine on the heap while the workload answers.
    public Task InvokeAsync(HttpContext context)
    {
        if (proxy.ControlPorts.Contains(context.Connection.LocalPort)) return next(context);
        var started = Stopwatch.GetTimestamp();
        var current = routes.Current;
        var host = context.Request.Host.Host;
        var graph = current.Find(host);
        if (graph is null) return NotFoundAsync(context, started, host);
        var decision = graph.Evaluate(new HttpRequestFacts(context));
        return decision.Terminal is BackendTerminal backend
            ? ForwardAsync(context, started, graph, decision, current.Pools(graph, backend), backend.Backend)
            : AnswerAsync(context, started, graph, decision);
    }

    private async Task NotFoundAsync(HttpContext context, long started, string host)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        await context.Response.WriteAsync($"no EdgeEru domain {host}\n");
        if (accessLog.Enabled) Log(context, started, null, null, null);
    }

    /// <summary>A terminal that answers itself: <c>respond</c> or <c>redirect</c>.</summary>
    private async Task AnswerAsync(HttpContext context, long started, RuleGraph graph, Decision decision)
    {
        switch (decision.Terminal)
        {
            case RespondTerminal respond:
                context.Response.StatusCode = respond.Status;
                if (respond.ContentType is not null) context.Response.ContentType = respond.ContentType;
                if (respond.Body is not null) await context.Response.WriteAsync(respond.Body);
                break;
            case RedirectTerminal redirect:
                var r = context.Request;
                context.Response.StatusCode = redirect.Status;
                context.Response.Headers.Location = redirect.Location(r.Scheme, r.Host.Value ?? "", decision.RewrittenPath ?? r.Path.Value ?? "", r.QueryString.Value ?? "");
                break;
        }
        Record(context, started, graph, decision.Terminal, null);
    }

    /// <summary>Metrics and the access log line of an answered request.</summary>
    private void Record(HttpContext context, long started, RuleGraph graph, Terminal terminal, Destination? destination)
    {
        RequestMetrics.Record(context.Response.StatusCode, started, graph, terminal);
        if (accessLog.Enabled) Log(context, started, graph, terminal, destination);
    }

    private void Log(HttpContext context, long started, RuleGraph? graph, Terminal? terminal, Destination? destination)
    {
        var r = context.Request;
        accessLog.Write(new AccessLog.AccessEntry(
            DateTime.UtcNow, context.Connection.RemoteIpAddress?.ToString() ?? "", r.Method, r.Host.Value ?? "",
            // The target as the client sent it (the graph may have rewritten Path since).
            context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? r.Path.Value + r.QueryString.Value,
            r.Protocol, context.Response.StatusCode,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, graph?.Domain.Name, terminal?.Id,
            destination is null ? null : $"{destination.Address}:{destination.Port}", destination?.WorkloadId,
            r.Headers.UserAgent is { Count: > 0 } ua ? ua.ToString() : null));
    }

    /// <summary>
    /// Forwards to a destination of the backend (retrying idempotent requests on connect failures), then
    /// records the request with the destination tried last. One method, so one state machine waits.
    /// </summary>
    private async Task ForwardAsync(HttpContext context, long started, RuleGraph graph, Decision decision, BackendPools pools, BackendSettings backend)
    {
        if (decision.RewrittenPath is not null) context.Request.Path = decision.RewrittenPath;
        if (backend.MaxBodyBytes > 0 && context.Request.ContentLength > backend.MaxBodyBytes)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            Record(context, started, graph, decision.Terminal, null);
            return;
        }
        var direct = proxy.DirectHttp1Forwarding && DirectHttp1Forwarding.CanForward(context, backend);
        var idempotent = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method) || HttpMethods.IsOptions(context.Request.Method);
        var attempts = 1 + (idempotent ? backend.Retries : 0);

        // Session affinity: the cookie names a destination; it is kept while that one is in the backend and not ejected.
        var affinityCookie = backend.AffinityCookie;
        Destination? sticky = null;
        if (affinityCookie is not null && context.Request.Cookies[affinityCookie] is { } key) sticky = pools.Find(key);
        var pool = pools.Choose();
        Destination? destination = null;
        for (var attempt = 1; ; attempt++)
        {
            destination = attempt == 1 && sticky is not null ? sticky : pool.Pick(backend.Policy);
            if (destination is null)
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                await context.Response.WriteAsync("no live workload for this backend\n");
                Record(context, started, graph, decision.Terminal, null);
            return;
            }
            if (affinityCookie is not null && destination != sticky)
                context.Response.Headers.Append(Microsoft.Net.Http.Headers.HeaderNames.SetCookie,
                    $"{affinityCookie}={destination.AffinityKey}; path=/; httponly; samesite=lax");
            destination.Begin();
            ForwarderError error;
            try
            {
                error = direct
                    ? await DirectHttp1Forwarding.SendAsync(context, destination, backend)
                    : await forwarder.SendAsync(context, destination.Prefix, client, ForwardSettings.For(backend).Config, ForwardSettings.For(backend).Transformer);
            }
            finally
            {
                destination.End();
            }
            if (error == ForwarderError.None) break;
            // Connect failures eject the destination for a while (passive health); retried when safe.
            if (error is ForwarderError.Request or ForwarderError.RequestTimedOut)
            {
                destination.Failed(error.ToString(), log);
                if (attempt < attempts && !context.Response.HasStarted)
                {
                    context.Response.Clear();
                    context.Response.StatusCode = StatusCodes.Status200OK;
                    continue;
                }
            }
            break;
        }
        Record(context, started, graph, decision.Terminal, destination);
    }
}

/// <summary>
/// How the proxy runs: direct HTTP/1.1 forwarding (on the epoll transport only, whose sockets it uses), and the
/// local ports that are not traffic (/metrics and /healthz, the admin API).
/// </summary>
internal sealed record ProxySettings(bool DirectHttp1Forwarding, HashSet<int> ControlPorts);

/// <summary>How YARP forwards requests to one backend: built once per compiled backend, not per request.</summary>
internal sealed class ForwardSettings(ForwarderRequestConfig config, EdgeTransformer transformer)
{
    private static readonly ConditionalWeakTable<BackendSettings, ForwardSettings> Cache = new();

    public ForwarderRequestConfig Config { get; } = config;
    public EdgeTransformer Transformer { get; } = transformer;

    public static ForwardSettings For(BackendSettings backend) => Cache.GetValue(backend, static b => new ForwardSettings(new()
    {
        // HTTP/1.1 to workloads unless the backend says h2c: then HTTP/2 with prior knowledge, nothing lower.
        ActivityTimeout = TimeSpan.FromMilliseconds(b.TimeoutMs),
        Version = b.Protocol == UpstreamProtocol.H2c ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11,
        VersionPolicy = b.Protocol == UpstreamProtocol.H2c ? HttpVersionPolicy.RequestVersionExact : HttpVersionPolicy.RequestVersionOrLower,
    }, new EdgeTransformer(b.Edits)));
}

/// <summary>Header edits of a backend, plus the X-Forwarded-* headers backends expect (<see cref="ForwardedHeaders"/>).</summary>
internal sealed class EdgeTransformer(HeaderEdits edits) : HttpTransformer
{

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        foreach (var name in (ReadOnlySpan<string>)[ForwardedHeaders.For, ForwardedHeaders.Proto, ForwardedHeaders.Host]) proxyRequest.Headers.Remove(name);
        proxyRequest.Headers.TryAddWithoutValidation(ForwardedHeaders.For, ForwardedHeaders.ForValue(httpContext));
        proxyRequest.Headers.TryAddWithoutValidation(ForwardedHeaders.Proto, httpContext.Request.Scheme);
        proxyRequest.Headers.TryAddWithoutValidation(ForwardedHeaders.Host, httpContext.Request.Host.Value);
        proxyRequest.Headers.Host = null; // the backend sees its own authority
        foreach (var name in edits.RemoveRequest) proxyRequest.Headers.Remove(name);
        foreach (var (name, value) in edits.SetRequest)
        {
            proxyRequest.Headers.Remove(name);
            proxyRequest.Headers.TryAddWithoutValidation(name, value);
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        foreach (var (name, value) in edits.SetResponse) httpContext.Response.Headers[name] = value;
        return result;
    }
}
