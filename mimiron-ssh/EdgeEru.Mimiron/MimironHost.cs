using EdgeEru.Mimiron.Audit;
using EdgeEru.Mimiron.Docker;
using EdgeEru.Mimiron.Sessions;
using EdgeEru.Hosting;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Options;

namespace EdgeEru.Mimiron;

/// <summary>The gateway's host, built the same way for the binary and for tests.</summary>
public static class MimironHost
{
    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        var builder = ServiceHost.CreateBuilder(args, logging);
        builder.ListenOnOpsUrls("http://127.0.0.1:9154"); // SSH itself is GatewayService's listener

        builder.Services.AddRegistryWatcher(builder.Configuration);
        builder.Services.AddCheckedOptions<GatewayOptions>(builder.Configuration, GatewayOptions.Section, o => o.Problems());
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<GatewayOptions>>().Value);
        builder.Services.AddSingleton<AuditLog>();
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<DockerClients>();
        builder.Services.AddSingleton<ExecRunner>();
        builder.Services.AddSingleton(sp => new GatewayHandler(() => sp.GetRequiredService<RegistryWatcher>().Current,
            sp.GetRequiredService<ExecRunner>(), sp.GetRequiredService<AuditLog>(), sp.GetRequiredService<GatewayMetrics>(),
            sp.GetRequiredService<GatewayOptions>(), sp.GetRequiredService<ILogger<GatewayHandler>>()));
        builder.Services.AddSingleton<GatewayService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayService>());

        var app = builder.Build();
        app.MapOps((GatewayService gateway, RegistryWatcher watcher) =>
        {
            var ready = watcher.Ready.IsCompleted && gateway.EndPoint is not null;
            var body = new HealthReport(ready ? "serving" : "starting", watcher.Current.Revision, watcher.InTouch,
                Math.Round(watcher.OutOfTouchFor.TotalSeconds, 1), watcher.Current.SshUsers.Count);
            // Serving from a stale snapshot while etcd is away is still serving.
            return ready ? Results.Json(body) : Results.Json(body, statusCode: 503);
        });
        return app;
    }
}

internal sealed record HealthReport(string Status, long Revision, bool RegistryInTouch, double RegistryOutOfTouchSeconds, int Users);
