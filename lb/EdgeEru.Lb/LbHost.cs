using EdgeEru.Lb.Proxy;
using EdgeEru.Hosting;
using EdgeEru.Lb.Routing;
using EdgeEru.Registry.Watch;

namespace EdgeEru.Lb;

/// <summary>The balancer's host, built the same way for the binary and for tests.</summary>
public static class LbHost
{
    /// <summary>Where traffic is served when Lb:Urls is not set.</summary>
    public const string DefaultProxyUrls = "http://127.0.0.1:8080";

    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        var builder = ServiceHost.CreateBuilder(args, logging);

        // Traffic on Lb:Urls (HTTP/1.1), Lb:H2cUrls (HTTP/2 without TLS) and Lb:Tls:Urls (TLS terminated with
        // a certificate picked by SNI, h2 or http/1.1);
        // /metrics and /healthz on Http:Urls (a port of their own).
        var proxyUrls = builder.Configuration["Lb:Urls"] ?? DefaultProxyUrls;
        var tlsUrls = builder.Configuration["Lb:Tls:Urls"];
        var h2cUrls = builder.Configuration["Lb:H2cUrls"]; // cleartext HTTP/2 with prior knowledge (e.g. internal gRPC clients)
        var opsUrls = builder.OpsUrls("http://127.0.0.1:9180");
        var opsPorts = Listeners.Ports(opsUrls);
        // The admin API: its own port, always behind a token (a random one, logged, when none is configured).
        var adminUrls = builder.Configuration["Lb:AdminUrls"] ?? "http://127.0.0.1:9181";
        var adminPorts = Listeners.Ports(adminUrls);
        var configuredToken = builder.Configuration["Lb:AdminToken"];
        var adminToken = string.IsNullOrWhiteSpace(configuredToken)
            ? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))
            : configuredToken;
        // Transport (Lb:Transport): "epoll" (the default on Linux x86-64) runs sockets on one event loop per core
        // that reads only when epoll says there is data and runs a request inline from its bytes to its answer,
        // for the clients' connections and the workloads' alike; "sockets" is Kestrel's own, with requests
        // on the thread that read them and no zero-byte reads.
        var transport = builder.Configuration["Lb:Transport"] ?? (Transport.Native.Supported ? "epoll" : "sockets");
        if (transport is not ("epoll" or "sockets"))
            throw new ArgumentException($"Lb:Transport is \"{transport}\"; it takes epoll or sockets");
        if (transport == "epoll" && !Transport.Native.Supported)
            throw new ArgumentException("Lb:Transport epoll needs Linux on x86-64; use sockets here");
        var epoll = transport == "epoll";
        // Lb:IoUring (default true): the epoll loops make each turn's receives and sends in one io_uring call
        // each; false, or a kernel without io_uring, makes one call per socket. For the process, as the loops are.
        Transport.EpollLoop.UseRing = builder.Configuration.GetValue("Lb:IoUring", true);
        // Lb:EpollSpin (default 20): how often an idle loop looks for events again (yielding its core) before
        // it sleeps in epoll_wait; under load that saves a sleep and a wakeup per turn. 0: sleep at once.
        var spin = builder.Configuration.GetValue("Lb:EpollSpin", 20);
        if (spin is < 0 or > 10_000) throw new ArgumentException($"Lb:EpollSpin is {spin}; it takes 0 to 10000");
        Transport.EpollLoop.SpinBeforeBlocking = spin;
        builder.WebHost.UseSockets(o =>
        {
            o.UnsafePreferInlineScheduling = true;
            o.WaitForDataBeforeAllocatingBuffer = false;
        });
        // Kestrel takes the transport registered last that can bind an endpoint.
        if (epoll)
            builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory, Transport.EpollTransportFactory>();
        // The HTTP/1.1 fast path (Lb:Http1Lane, default true): plain GET and HEAD on Lb:Urls answered without
        // Kestrel's per-request objects, through the epoll transport's accept hook. Only here does anything refer
        // to it: without these lines, every request goes through Kestrel.
        if (epoll && builder.Configuration.GetValue("Lb:Http1Lane", true))
        {
            builder.Services.AddSingleton<FastPath.Http1FastPath>();
            builder.Services.AddSingleton<Transport.IAcceptHook>(sp => sp.GetRequiredService<FastPath.Http1FastPath>());
            builder.Services.AddHostedService(sp => sp.GetRequiredService<FastPath.Http1FastPath>());
        }
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Kestrel's limits (Kestrel:Limits:KeepAliveTimeout, RequestHeadersTimeout, ...), which the HTTP/1.1 fast path keeps too.
            builder.Configuration.GetSection("Kestrel:Limits").Bind(k.Limits);
            // A request's Content-Length in digits only ("+5" and "-0" get Kestrel's 400): see ContentLengthDigits.
            k.RequestHeaderEncodingSelector = ContentLengthDigits.Select;
            Listeners.Listen(k, $"{proxyUrls};{opsUrls};{adminUrls}", tls: null);
            if (!string.IsNullOrWhiteSpace(h2cUrls))
                Listeners.Listen(k, h2cUrls, tls: null, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
            if (!string.IsNullOrWhiteSpace(tlsUrls))
                Listeners.Listen(k, tlsUrls, tls: k.ApplicationServices.GetRequiredService<Tls.TlsCertificates>());
        });
        builder.Services.AddHostedService<Health.ActiveChecks>();
        builder.Services.AddSingleton<AccessLog.AccessLogWriter>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AccessLog.AccessLogWriter>());
        builder.Services.AddSingleton<Tls.TlsCertificates>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Tls.TlsCertificates>());
        // ACME: HTTP-01 answered on the traffic ports from the registry; orders and renewals for domains with an acme block.
        builder.Services.AddSingleton<Acme.ChallengeResponder>();
        builder.Services.AddHostedService<Acme.AcmeCertificates>();
        HotPath.Quiet(builder.Logging);
        HotPath.WithoutHostFiltering(builder.Services);

        builder.Services.AddRegistryWatcher(builder.Configuration);
        builder.Services.AddRemoteDatacenters(builder.Configuration); // other datacenters' registries, read-only (multi-dc.md)
        builder.Services.ConfigureHttpJsonOptions(o =>
            o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower);
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton(_ => ProxyMiddleware.CreateClient(epoll));
        builder.Services.AddSingleton(new ProxySettings(DirectHttp1Forwarding: epoll, ControlPorts: [.. opsPorts, .. adminPorts]));
        builder.Services.AddSingleton<RoutesHolder>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RoutesHolder>());

        var app = builder.Build();
        // Traffic first: the proxy hands requests on the ops and admin ports on to the branches below, so a
        // proxied request costs one port lookup, not a pass through each branch's predicate.
        app.UseMiddleware<ProxyMiddleware>();
        // Serving once the routes are compiled from the first snapshot, not merely once it was read: a replica put
        // behind clients (or a rolling replace's health gate) before that would answer 404 for every domain.
        app.MapOpsOnPorts(opsPorts, (RoutesHolder routes, RegistryWatcher watcher) =>
        {
            var serving = watcher.Ready.IsCompleted && routes.Current.Snapshot.Revision > 0;
            return Results.Json(new
            {
                status = serving ? "serving" : "starting",
                revision = routes.Current.Snapshot.Revision,
                domains = routes.Current.Graphs.Count(),
                registryInTouch = watcher.InTouch,
            }, statusCode: serving ? 200 : 503);
        });
        app.MapWhen(ctx => adminPorts.Contains(ctx.Connection.LocalPort), admin =>
        {
            admin.UseRouting();
            admin.UseEndpoints(e => Admin.AdminApi.Map(e, adminToken));
        });
        if (string.IsNullOrWhiteSpace(configuredToken))
            app.Logger.LogWarning("no Lb:AdminToken configured; the admin API on {Urls} takes this one for this run: {Token}",
                adminUrls, adminToken);
        return app;
    }
}
