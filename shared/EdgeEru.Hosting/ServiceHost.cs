using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace EdgeEru.Hosting;

/// <summary>
/// The web host set-up every EdgeEru service shares: the builder and the ops endpoints, <c>/metrics</c> and
/// <c>/healthz</c> on <c>Http:Urls</c>. Each host adds only its own: its services, its other listeners, its health.
/// </summary>
public static class ServiceHost
{
    /// <summary>The setting with the ops endpoints' URLs (<c>;</c>-separated).</summary>
    public const string OpsUrlsKey = "Http:Urls";

    /// <summary>
    /// A service's builder: <see cref="ServiceConventions.HostArgs"/>, appsettings.json the one next to the binary
    /// whatever the working directory, <see cref="ServiceConventions.ApplyEruConventions"/>, and no Server header
    /// (nothing to tell a scanner).
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] args, Action<ILoggingBuilder>? logging)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = ServiceConventions.HostArgs(args),
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.ApplyEruConventions(args, logging);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        return builder;
    }

    /// <summary><c>Http:Urls</c>, or the service's own default: where /metrics and /healthz answer.</summary>
    public static string OpsUrls(this WebApplicationBuilder builder, string defaultUrls) =>
        builder.Configuration[OpsUrlsKey] ?? defaultUrls;

    /// <summary>
    /// For a service whose only HTTP is its ops endpoints (its own traffic is not HTTP, or it has none):
    /// Kestrel listens on <c>Http:Urls</c> alone. Returns those URLs.
    /// </summary>
    public static string ListenOnOpsUrls(this WebApplicationBuilder builder, string defaultUrls)
    {
        var urls = builder.OpsUrls(defaultUrls);
        builder.WebHost.UseUrls(urls);
        return urls;
    }

    /// <summary>/metrics (Prometheus) and /healthz, answered by <paramref name="health"/> (a minimal API handler).</summary>
    public static void MapOps(this IEndpointRouteBuilder endpoints, Delegate health)
    {
        endpoints.MapMetrics("/metrics");
        endpoints.MapGet("/healthz", health);
    }

    /// <summary>
    /// /metrics and /healthz on <paramref name="opsPorts"/> alone, for a service whose other ports carry its
    /// traffic: a branch of the pipeline that only requests to those ports enter.
    /// </summary>
    public static void MapOpsOnPorts(this IApplicationBuilder app, IReadOnlySet<int> opsPorts, Delegate health) =>
        app.MapWhen(ctx => opsPorts.Contains(ctx.Connection.LocalPort), ops =>
        {
            ops.UseRouting();
            ops.UseEndpoints(e => e.MapOps(health));
        });
}
