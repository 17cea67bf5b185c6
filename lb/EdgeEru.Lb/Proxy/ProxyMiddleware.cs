using System.Diagnostics;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Routing;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// The data plane on Kestrel: find the domain's graph, walk it, and answer (respond, redirect) or forward the
/// request through the forward loop to a destination of the backend, directly over HTTP/1.1 when it can
/// (<see cref="DirectHttp1Forwarding"/>), else with YARP's forwarder.
/// </summary>
internal sealed class ProxyMiddleware(RequestDelegate next, RoutesHolder routes, IHttpForwarder forwarder, HttpMessageInvoker client,
    AccessLog.AccessLogWriter accessLog, ProxySettings proxy, Acme.ChallengeResponder challenges, ILogger<ProxyMiddleware> log)
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

    // Synchronous up to the answer: of the async methods on a forwarded request's way, only the forward loop,
    // the exchange (or YARP's forwarder) keep a state machine on the heap while the workload answers.
    public Task InvokeAsync(HttpContext context)
    {
        if (proxy.ControlPorts.Contains(context.Connection.LocalPort)) return next(context);
        var started = Stopwatch.GetTimestamp();
        var current = routes.Current;
        // HTTP-01 before any domain's rules: the CA asks before the domain may even route anywhere.
        if (Acme.ChallengeResponder.IsChallenge(context.Request.Path.Value)) return challenges.AnswerAsync(context);
        var host = context.Request.Host.Host;
        var graph = current.Find(host);
        if (graph is null) return NotFoundAsync(context, started, host);
        var decision = graph.Evaluate(new HttpRequestFacts(context));
        return decision.Terminal is BackendTerminal backend
            ? ForwardAsync(context, started, graph, backend, decision.RewrittenPath, current.Pools(graph, backend))
            : AnswerAsync(context, started, graph, decision);
    }

    private async Task NotFoundAsync(HttpContext context, long started, string host)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        await context.Response.WriteAsync($"no EdgeEru domain {host}\n");
        Record(context, started, null, null, null);
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
                var path = decision.RewrittenPath ?? r.Path.Value ?? "";
                context.Response.Headers.Location = redirect.Location(r.Scheme, r.Host.Value ?? "", path, r.QueryString.Value ?? "");
                break;
        }
        Record(context, started, graph, decision.Terminal, null);
    }

    /// <summary>Metrics and the access-log line of an answered request.</summary>
    private void Record(HttpContext context, long started, RuleGraph? graph, Terminal? terminal, Destination? destination) =>
        Served.Record(accessLog, new LoggedRequest(context), context.Response.StatusCode, started, graph, terminal, destination);

    /// <summary>
    /// Forwards to a destination of the backend through the forward loop (idempotent requests are retried on
    /// another after a connect failure or timeout), which records the request at its end.
    /// </summary>
    private Task ForwardAsync(HttpContext context, long started, RuleGraph graph, BackendTerminal terminal, string? rewrittenPath,
        BackendPools pools)
    {
        if (rewrittenPath is not null) context.Request.Path = rewrittenPath;
        var backend = terminal.Backend;
        if (backend.MaxBodyBytes > 0 && context.Request.ContentLength > backend.MaxBodyBytes)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            Record(context, started, graph, terminal, null);
            return Task.CompletedTask;
        }
        var method = context.Request.Method;
        var idempotent = HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method);

        // Session affinity: the cookie names a destination; it is kept while that one is in the backend and not ejected.
        Destination? sticky = null;
        if (backend.AffinityCookie is { } cookie && context.Request.Cookies[cookie] is { } key) sticky = pools.Find(key);

        var direct = proxy.DirectHttp1Forwarding && DirectHttp1Forwarding.CanForward(context, backend);
        var side = new KestrelClient(this, context, terminal, started, graph, sticky, direct);
        var forwarding = ForwardLoop.RunAsync(side, pools, backend, 1 + (idempotent ? backend.Retries : 0), sticky, log);
        // Kestrel wants a Task: the loop's own, wrapped only when it waits (a small object, not another state machine).
        if (!forwarding.IsCompletedSuccessfully) return forwarding.AsTask();
        forwarding.GetAwaiter().GetResult();
        return Task.CompletedTask;
    }

    /// <summary>Through YARP's forwarder, its errors read as the forward loop's outcomes.</summary>
    private async ValueTask<ForwardOutcome> SendWithYarpAsync(HttpContext context, Destination destination, BackendSettings backend)
    {
        var settings = ForwardSettings.For(backend);
        return await forwarder.SendAsync(context, destination.Prefix, client, settings.Config, settings.Transformer) switch
        {
            ForwarderError.None => ForwardOutcome.Done,
            ForwarderError.Request => ForwardOutcome.Unreachable,
            ForwarderError.RequestTimedOut => ForwardOutcome.TimedOut,
            _ => ForwardOutcome.Answered,
        };
    }

    /// <summary>Kestrel's side of a forwarded request, for the forward loop.</summary>
    private readonly struct KestrelClient(ProxyMiddleware proxy, HttpContext context, BackendTerminal terminal, long started,
        RuleGraph graph, Destination? sticky, bool direct) : IForwardingClient
    {
        public ValueTask<ForwardOutcome> SendAsync(Destination destination)
        {
            if (terminal.Backend.AffinityCookie is { } cookie && destination != sticky)
                context.Response.Headers.Append(Microsoft.Net.Http.Headers.HeaderNames.SetCookie,
                    $"{cookie}={destination.AffinityKey}; path=/; httponly; samesite=lax");
            return direct
                ? DirectHttp1Forwarding.SendAsync(context, destination, terminal.Backend)
                : proxy.SendWithYarpAsync(context, destination, terminal.Backend);
        }

        public bool CanRetry => !context.Response.HasStarted;

        public void Reset()
        {
            context.Response.Clear();
            context.Response.StatusCode = StatusCodes.Status200OK;
        }

        public ValueTask FailAsync(ForwardOutcome outcome)
        {
            var response = context.Response;
            switch (outcome)
            {
                case ForwardOutcome.NoDestination:
                    response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                    return new ValueTask(response.WriteAsync("no live workload for this backend\n"));
                // YARP answers these itself; the direct way's answer is the LB's (empty), or a cut connection once it started.
                case ForwardOutcome.Unreachable or ForwardOutcome.TimedOut or ForwardOutcome.BadResponse or ForwardOutcome.BodyBroken
                    when direct:
                    if (response.HasStarted) context.Abort();
                    else
                    {
                        response.Clear();
                        response.StatusCode = outcome == ForwardOutcome.TimedOut
                            ? StatusCodes.Status504GatewayTimeout
                            : StatusCodes.Status502BadGateway;
                    }
                    return default;
                default: // the client left (Kestrel sees to it), or YARP has answered
                    return default;
            }
        }

        public void Record(Destination? destination) => proxy.Record(context, started, graph, terminal, destination);
    }

    /// <summary>A Kestrel request as its access-log line describes it.</summary>
    private readonly struct LoggedRequest(HttpContext context) : ILoggedRequest
    {
        public string Client => context.Connection.RemoteIpAddress?.ToString() ?? "";
        public string Method => context.Request.Method;
        public string Host => context.Request.Host.Value ?? "";
        public string Target =>
            context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value + context.Request.QueryString.Value;
        public string Protocol => context.Request.Protocol;
        public string? UserAgent => context.Request.Headers.UserAgent is { Count: > 0 } ua ? ua.ToString() : null;
    }
}

/// <summary>
/// How the proxy runs: direct HTTP/1.1 forwarding (on the epoll transport only, whose sockets it uses), and the
/// local ports that are not traffic (/metrics and /healthz, the admin API).
/// </summary>
internal sealed record ProxySettings(bool DirectHttp1Forwarding, HashSet<int> ControlPorts);
