using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Forwarding;
using EdgeEru.Dns.Server;
using EdgeEru.Registry.Hosting;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Options;
using Prometheus;

namespace EdgeEru.Dns;

/// <summary>The server's host, built the same way for the binary and for tests.</summary>
public static class DnsHost
{
    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        // appsettings.json is the one next to the binary, whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = ServiceConventions.HostArgs(args), ContentRootPath = AppContext.BaseDirectory });
        builder.ApplyEruConventions(args, logging);
        builder.WebHost.UseUrls(builder.Configuration["Http:Urls"] ?? "http://127.0.0.1:9153");

        builder.Services.AddRegistryWatcher(builder.Configuration);
        builder.Services.AddOptions<DnsOptions>().Bind(builder.Configuration.GetSection(DnsOptions.Section)).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<DnsOptions>, DnsOptionsValidator>();
        builder.Services.AddSingleton<DnsMetrics>();
        builder.Services.AddSingleton<DnsTableHolder>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DnsTableHolder>());
        builder.Services.AddSingleton(sp => new QueryProcessor(() => sp.GetRequiredService<DnsTableHolder>().Current));
        builder.Services.AddSingleton<Forwarder>();
        builder.Services.AddHostedService<UdpServer>();
        builder.Services.AddHostedService<TcpServer>();

        var app = builder.Build();
        app.MapMetrics("/metrics");
        app.MapGet("/healthz", (DnsTableHolder tables, RegistryWatcher watcher) =>
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

internal sealed class DnsOptionsValidator : IValidateOptions<DnsOptions>
{
    public ValidateOptionsResult Validate(string? name, DnsOptions options)
    {
        var problems = options.Problems();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
