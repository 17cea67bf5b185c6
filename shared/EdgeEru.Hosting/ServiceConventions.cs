using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Hosting;

/// <summary>What every EdgeEru service does the same way: configuration sources and log format.</summary>
public static class ServiceConventions
{
    /// <summary>
    /// The host's own arguments: <paramref name="args"/> with appsettings file watching off. Services follow
    /// the registry live, not their files, and every file watcher takes one of the user's few inotify
    /// instances (128 by default), which dockerd and the other services on a machine use up too.
    /// </summary>
    public static string[] HostArgs(string[] args) => ["--hostBuilder:reloadConfigOnChange=false", .. args];

    /// <summary>
    /// appsettings.json (by the host), then <c>ERU_</c> environment variables (<c>ERU_Dns__Port</c>), then
    /// <c>--Section:Key value</c> flags. Logs are JSON lines unless <c>Logging:Format</c> is <c>simple</c>;
    /// tests pass <paramref name="logging"/> to send them elsewhere.
    /// </summary>
    public static void ApplyEruConventions(this IHostApplicationBuilder builder, string[] args, Action<ILoggingBuilder>? logging = null)
    {
        builder.Configuration.AddEnvironmentVariables("ERU_");
        builder.Configuration.AddCommandLine(args);
        builder.Logging.ClearProviders();
        if (logging is not null) logging(builder.Logging);
        else if (builder.Configuration["Logging:Format"] == "simple") builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        else builder.Logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ");
    }
}
