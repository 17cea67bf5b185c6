using EdgeEru.Agent.Logs;
using EdgeEru.Agent.Logs.Sinks;
using EdgeEru.Agent.Stats;
using EdgeEru.Docker;
using EdgeEru.Hosting;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Options;
using Prometheus;

namespace EdgeEru.Agent;

/// <summary>eru-agent's host, built the same way for the binary and for tests.</summary>
public static class AgentHost
{
    private static int _metricsConfigured;

    public static WebApplication Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        QuietMetrics();
        var builder = ServiceHost.CreateBuilder(args, logging);
        var problems = ConfigProblems(builder.Configuration);
        if (problems.Count > 0) throw new OptionsValidationException("eru-agent", typeof(AgentServiceOptions), problems);
        var urls = builder.ListenOnOpsUrls("http://127.0.0.1:9190"); // the log stream API shares the ops port

        builder.Services.AddRegistryWatcher(builder.Configuration);
        builder.Services.AddCheckedOptions<AgentServiceOptions>(builder.Configuration, AgentServiceOptions.Section, o => o.Problems());
        builder.Services.AddCheckedOptions<LogsOptions>(builder.Configuration, LogsOptions.Section, o => o.Problems());
        builder.Services.AddCheckedOptions<MetricsOptions>(builder.Configuration, MetricsOptions.Section, o => o.Problems());

        builder.Services.AddSingleton(sp => new DockerEngine(sp.GetRequiredService<IOptions<AgentServiceOptions>>().Value.DockerEndpoint));
        builder.Services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AgentServiceOptions>>().Value;
            var watcher = sp.GetRequiredService<RegistryWatcher>();
            var agentOptions = new AgentOptions
            {
                Node = o.Node, LeaseTtl = o.LeaseTtl, Interval = o.Interval, ReconcileInterval = o.ReconcileInterval,
                DockerBackoffMax = o.DockerBackoffMax, AgentUrl = o.AdvertiseUrl ?? Advertised(urls),
            };
            return new NodeAgent(sp.GetRequiredService<RegistryStore>(), () => watcher.Current, sp.GetRequiredService<DockerEngine>(),
                agentOptions, sp.GetRequiredService<ILogger<NodeAgent>>());
        });
        builder.Services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<LogsOptions>>().Value;
            var logs = sp.GetRequiredService<ILoggerFactory>();
            var sinks = o.Sinks.Select((s, i) => CreateSink(s.DisplayName(i), s, logs.CreateLogger("EdgeEru.Agent.Logs.Sink"))).ToList();
            return new LogHub(sinks, o);
        });
        builder.Services.AddSingleton(sp => new LogShipper(sp.GetRequiredService<NodeAgent>(), sp.GetRequiredService<DockerEngine>(),
            sp.GetRequiredService<LogHub>(), sp.GetRequiredService<IOptions<LogsOptions>>().Value,
            sp.GetRequiredService<ILogger<LogShipper>>(),
            new LogCursors(sp.GetRequiredService<IOptions<LogsOptions>>().Value.CursorFile, sp.GetRequiredService<ILogger<LogCursors>>())));
        builder.Services.AddSingleton(sp => new ContainerMetrics(sp.GetRequiredService<NodeAgent>(), sp.GetRequiredService<DockerEngine>(),
            Cgroups.ForHost(), sp.GetRequiredService<IOptions<MetricsOptions>>().Value,
            sp.GetRequiredService<ILogger<ContainerMetrics>>()));
        builder.Services.AddHostedService<AgentService>();

        var app = builder.Build();
        app.MapOps((NodeAgent agent, RegistryWatcher watcher) =>
        {
            var status = !agent.DockerUp ? "docker not answering"
                : !agent.HeartbeatWritten ? "no heartbeat"
                : !agent.EtcdUp ? "etcd away"
                : "ok";
            return Results.Json(new
            {
                status, node = agent.Node, docker_up = agent.DockerUp, etcd_up = agent.EtcdUp, heartbeat = agent.HeartbeatWritten,
                registry_in_touch = watcher.InTouch, containers = agent.Containers.Count,
            }, statusCode: agent.DockerUp && agent.HeartbeatWritten ? 200 : 503);
        });
        LogStreamApi.Map(app, builder.Configuration["Http:Token"]);
        return app;
    }

    /// <summary>
    /// prometheus-net listens to every Meter and EventSource by default: with a health check per container every
    /// second, HttpClient's per-address histograms grew by every container's address (memory and a measurement per
    /// check). /metrics keeps the agent's own metrics, the registry watcher's meter and the process metrics, as eru-lb's.
    /// </summary>
    private static void QuietMetrics()
    {
        if (Interlocked.Exchange(ref _metricsConfigured, 1) == 1) return;
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressEventCounters = true });
        Metrics.ConfigureMeterAdapter(o => o.InstrumentFilterPredicate = i => i.Meter.Name == RegistryWatcher.MeterName);
    }

    /// <summary>Every problem of the configuration at once, before anything starts (values that do not even bind included).</summary>
    internal static List<string> ConfigProblems(IConfiguration config)
    {
        var problems = new List<string>();
        void Check<T>(string section, Func<T, IReadOnlyList<string>> validate) where T : new()
        {
            try
            {
                problems.AddRange(validate(config.GetSection(section).Get<T>() ?? new T()));
            }
            catch (InvalidOperationException ex)
            {
                problems.Add($"{section}: {ex.Message}{(ex.InnerException is null ? "" : " " + ex.InnerException.Message)}");
            }
        }
        Check<AgentServiceOptions>(AgentServiceOptions.Section, o => o.Problems());
        Check<LogsOptions>(LogsOptions.Section, o => o.Problems());
        Check<MetricsOptions>(MetricsOptions.Section, o => o.Problems());
        return problems;
    }

    /// <summary>The first of Http:Urls, when it names a host others can reach (not a wildcard).</summary>
    internal static string? Advertised(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        if (first is null) return null;
        var wildcard = first.Replace("://*", "://w", StringComparison.Ordinal).Replace("://+", "://w", StringComparison.Ordinal);
        if (!Uri.TryCreate(wildcard, UriKind.Absolute, out var u) || u.Host is "w" or "0.0.0.0" or "[::]") return null;
        return first.TrimEnd('/');
    }

    private static LogSink CreateSink(string name, LogSinkOptions o, ILogger log) => o.Type switch
    {
        "stdout" => new StdoutSink(name, o, log),
        "file" => new FileSink(name, o, log),
        "tcp" => new TcpSink(name, o, syslog: false, log),
        "syslog-tcp" => new TcpSink(name, o, syslog: true, log),
        "udp" => new UdpSink(name, o, syslog: false, log),
        "syslog-udp" => new UdpSink(name, o, syslog: true, log),
        _ => throw new OptionsValidationException(name, typeof(LogSinkOptions), [$"unknown sink type {o.Type}"]),
    };
}

/// <summary>
/// Runs the agent, its log shipper and its metrics with the host; on stop, revokes the lease (the node's keys go at once).
/// </summary>
internal sealed class AgentService(NodeAgent agent, LogHub hub, LogShipper shipper, ContainerMetrics metrics,
    IOptions<AgentServiceOptions> options, ILogger<AgentService> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        log.LogInformation("agent {Node} starting: Docker at {Docker}, advertised as {Url}", agent.Node, options.Value.Docker,
            agent.AgentUrl ?? "(nothing)");
        if (agent.AgentUrl is null)
            log.LogWarning("agent {Node}: no Agent:AdvertiseUrl and Http:Urls names no host: eru logs cannot find this agent", agent.Node);
        foreach (var s in hub.Sinks) s.Start();
        await Task.WhenAll(
            Task.Run(() => agent.RunAsync(stoppingToken), CancellationToken.None),
            Task.Run(() => shipper.RunAsync(stoppingToken), CancellationToken.None),
            Task.Run(() => metrics.RunAsync(stoppingToken), CancellationToken.None));
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await agent.DisposeAsync();
        foreach (var s in hub.Sinks) await s.DisposeAsync();
        log.LogInformation("agent {Node} stopped; its keys are revoked", agent.Node);
    }
}
