using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Forwarding;
using EdgeEru.Dns.Server;
using EdgeEru.Hosting;
using EdgeEru.Registry.Watch;

namespace EdgeEru.Dns;

/// <summary>The server's host, built the same way for the binary and for tests.</summary>
public static class DnsHost
{
    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        var builder = ServiceHost.CreateBuilder(args, logging);
        builder.ListenOnOpsUrls("http://127.0.0.1:9153"); // DNS itself is on its own sockets (Server/)

        builder.Services.AddRegistryWatcher(builder.Configuration);
        builder.Services.AddRemoteDatacenters(builder.Configuration); // other datacenters' registries, read-only (multi-dc.md)
        builder.Services.AddCheckedOptions<DnsOptions>(builder.Configuration, DnsOptions.Section, o => o.Problems());
        builder.Services.AddSingleton<DnsMetrics>();
        builder.Services.AddSingleton<DnsTableHolder>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DnsTableHolder>());
        builder.Services.AddSingleton(sp => new QueryProcessor(() => sp.GetRequiredService<DnsTableHolder>().Current));
        builder.Services.AddSingleton<Forwarder>();
        builder.Services.AddHostedService<UdpServer>();
        builder.Services.AddHostedService<TcpServer>();

        var app = builder.Build();
        app.MapOps((DnsTableHolder tables, RegistryWatcher watcher) =>
        {
            var table = tables.Current;
            var body = new HealthReport(table is null ? "starting" : "serving", table?.Snapshot.Revision ?? 0, watcher.InTouch,
                Math.Round(watcher.OutOfTouchFor.TotalSeconds, 1));
            // Serving from a stale snapshot while etcd is away is still serving.
            return table is null ? Results.Json(body, statusCode: 503) : Results.Json(body);
        });
        return app;
    }
}

internal sealed record HealthReport(string Status, long Revision, bool RegistryInTouch, double RegistryOutOfTouchSeconds);
