using System.Collections.Concurrent;
using EdgeEru.Agent;
using EdgeEru.Docker;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// What real apps need, once for a test class: a real etcd, two simulated hosts with agents, eru-core with a
/// secrets key and an allowed bind root, and the eru CLI pointed at it. Core's log is kept, to check that
/// no secret ever reaches it.
/// </summary>
public sealed class AppsRig : IAsyncLifetime, IDisposable
{
    public const string Token = "apps-token";
    public const long MiB = 1L << 20;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _agents = [];
    private EtcdServer _etcd = null!;
    private WebApplication _core = null!;
    private EtcdConnection _conn = null!;
    private RegistryWatcher _watcher = null!;

    public DockerRig Rig { get; private set; } = null!;
    public RegistryStore Store { get; private set; } = null!;
    public string Prefix { get; } = "/apps" + Guid.NewGuid().ToString("N")[..8];
    public string CoreUrl { get; private set; } = "";

    /// <summary>A scratch folder for app specs and files; <see cref="BindRoot"/> lies inside it.</summary>
    public string Dir { get; } = Directory.CreateTempSubdirectory("eru-apps-").FullName;
    public string BindRoot => Path.Combine(Dir, "binds");

    /// <summary>Every line eru-core logged.</summary>
    public ConcurrentQueue<string> CoreLog { get; } = new();

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(BindRoot);
        Rig = await DockerRig.StartAsync(hosts: 2);
        _etcd = await EtcdServer.StartAsync();
        _conn = new EtcdConnection(new RegistryOptions { Endpoints = _etcd.ClientUrl, Prefix = Prefix });
        Store = new RegistryStore(_conn);
        await Store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        foreach (var h in Rig.Hosts) await Store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 1024 * MiB));
        var key = Path.Combine(Dir, "secrets.key");
        await File.WriteAllBytesAsync(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        CoreUrl = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", _etcd.ClientUrl, "--Registry:Prefix", Prefix, "--Core:Urls", CoreUrl,
            "--Core:Token", Token,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Core:SecretsKeyFile", key, "--Core:BindRoots", BindRoot],
            l => l.AddProvider(new QueueLogger(CoreLog)));
        await _core.StartAsync();
        var logs = LoggerFactory.Create(b => b.AddProvider(new QueueLogger(CoreLog)));
        _watcher = new RegistryWatcher(_conn, logs.CreateLogger<RegistryWatcher>());
        _watcher.Start();
        foreach (var h in Rig.Hosts)
        {
            var agent = new NodeAgent(Store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
                new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
                logs.CreateLogger<NodeAgent>());
            _agents.Add(Task.Run(() => agent.RunAsync(_stop.Token)));
        }
        await TestSupport.Eventually.True(() => Rig.Hosts.All(h => _watcher.Current.IsNodeAlive($"h{h.Index}")), TimeSpan.FromSeconds(20),
            "both nodes alive");
    }

    /// <summary>eru against this rig's Core.</summary>
    public Task<(int Code, string Stdout, string Stderr)> EruAsync(ITestOutputHelper output, params string[] args) =>
        EruAsync(output, null, args);

    public Task<(int Code, string Stdout, string Stderr)> EruAsync(ITestOutputHelper output, byte[]? stdin, params string[] args) =>
        EruCli.RunAsync(output, stdin, CliArgs(args));

    /// <summary>The arguments with Core's URL and token, before a "--" (what follows it is a job's command).</summary>
    public string[] CliArgs(params string[] args)
    {
        var end = Array.IndexOf(args, "--");
        return end < 0
            ? [.. args, "--core", CoreUrl, "--token", Token]
            : [.. args[..end], "--core", CoreUrl, "--token", Token, .. args[end..]];
    }

    public DockerHost Host(string node) => Rig.Hosts.Single(h => $"h{h.Index}" == node);

    public async Task<List<Workload>> RecordsAsync(string app) =>
        [.. (await Store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).Where(w => w.App == app)];

    /// <summary>The EdgeEru containers of <paramref name="app"/> on every host, running or not.</summary>
    public async Task<List<ContainerState>> ContainersAsync(string app) =>
        [.. (await RigDocker.ContainersAsync(Rig)).Where(c => c.Labels.TryGetValue(DockerEngine.AppLabel, out var a) && a == app)];

    /// <summary>Docker volumes labelled for <paramref name="app"/> on every host.</summary>
    public async Task<List<string>> VolumesAsync(string app)
    {
        var all = new List<string>();
        foreach (var h in Rig.Hosts)
            all.AddRange((await h.DockerAsync(["volume", "ls", "-q", "--filter", $"label={DockerEngine.AppLabel}={app}"]))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries));
        return all;
    }

    public bool IsLive(string id) => _watcher.Current.IsLive(id);

    public string? WhyNotLive(string id) =>
        _watcher.Current.Workloads.TryGetValue(id, out var w) ? _watcher.Current.WhyNotLive(w) : "no record";

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var a in _agents)
        {
            try
            {
                await a;
            }
            catch (OperationCanceledException)
            {
            }
        }
        if (_core is not null) await _core.DisposeAsync();
        if (_watcher is not null) await _watcher.DisposeAsync();
        _conn?.Dispose();
        _stop.Dispose();
        if (Rig is not null) await Rig.DisposeAsync();
        if (_etcd is not null) await _etcd.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }

    public void Dispose() => _stop.Dispose();

    /// <summary>Keeps log lines in memory (exceptions too).</summary>
    private sealed class QueueLogger(ConcurrentQueue<string> lines) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(
            LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue(formatter(state, exception) + (exception is null ? "" : " " + exception));

        public void Dispose()
        {
        }
    }
}
