using System.Globalization;
using System.Text.RegularExpressions;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Agent.Tests;

/// <summary>
/// Tests that need Docker share one simulated host (a netns with its own dockerd) and one etcd, and run
/// one at a time. Each test takes its own registry prefix, node name and app names, and removes its
/// containers when done.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RigCollection : ICollectionFixture<RigFixture>, ICollectionFixture<EtcdFixture>
{
    public const string Name = "agent-rig";
}

public sealed class RigFixture : IAsyncLifetime
{
    private DockerRig? _rig;

    public DockerHost Host => _rig!.Hosts[0];

    public async Task InitializeAsync() => _rig = await DockerRig.StartAsync(hosts: 1);

    public async Task DisposeAsync()
    {
        if (_rig is not null) await _rig.DisposeAsync();
    }
}

/// <summary>One test's corner of the rig: a prefix, a node in the registry pointing at the rig host, deploys, and agents.</summary>
public sealed partial class AgentScene : IAsyncDisposable
{
    private readonly RigFixture _rig;
    private readonly ITestOutputHelper _output;
    private readonly EtcdConnection _conn;
    private readonly List<WebApplication> _agents = [];

    public AgentScene(RigFixture rig, string etcdUrl, ITestOutputHelper output)
    {
        _rig = rig;
        _output = output;
        EtcdUrl = etcdUrl;
        Prefix = EtcdFixture.NewPrefix();
        Node = "n" + Guid.NewGuid().ToString("N")[..8];
        _conn = new EtcdConnection(new RegistryOptions
        {
            Endpoints = etcdUrl, Prefix = Prefix, RequestTimeout = TimeSpan.FromSeconds(3), KeepAlive = TimeSpan.FromSeconds(2),
        });
        Store = new RegistryStore(_conn);
        Logs = XunitLoggerProvider.Factory(output);
    }

    public string EtcdUrl { get; }
    public string Prefix { get; }
    public string Node { get; }
    public RegistryStore Store { get; }
    public ILoggerFactory Logs { get; }
    public DockerHost Host => _rig.Host;
    public int HttpPort { get; private set; }

    /// <summary>Stops an in-process agent (a clean stop: its lease is revoked).</summary>
    public async Task StopAgentAsync(WebApplication agent)
    {
        _agents.Remove(agent);
        await agent.StopAsync();
        await agent.DisposeAsync();
    }
    public const string Token = "test-token";

    public async Task RegisterNodeAsync()
    {
        await Store.PutAsync(Kinds.Pods, new Pod { Name = "p" });
        await Store.PutAsync(Kinds.Nodes, Host.AsNode("p", cpuCores: 2, memoryBytes: 2L << 30) with { Name = Node });
    }

    /// <summary>The arguments of an agent for this scene (in-process or as a process).</summary>
    public string[] AgentArgs(int httpPort, params string[] extra) =>
    [
        // Later flags win: a test may point the agent at Docker through a proxy.
        "--Registry:Endpoints", EtcdUrl, "--Registry:Prefix", Prefix,
        "--Registry:RequestTimeout", "00:00:03", "--Registry:KeepAlive", "00:00:02",
        "--Agent:Node", Node, "--Agent:Docker", Host.Endpoint, "--Agent:LeaseTtl", "00:00:03", "--Agent:Interval", "00:00:00.200",
        "--Agent:ReconcileInterval", "00:00:05", "--Http:Urls", $"http://127.0.0.1:{httpPort}", "--Http:Token", Token,
        "--Metrics:Interval", "00:00:01", "--Logging:LogLevel:EdgeEru", "Debug", "--Agent:DockerBackoffMax", "00:00:01", .. extra,
    ];

    /// <summary>Starts eru-agent in this process (its logs in the test output).</summary>
    public async Task<WebApplication> StartAgentAsync(params string[] extra)
    {
        if (HttpPort == 0) HttpPort = Ports.FreeTcp(); // an agent started again keeps its port
        var app = AgentHost.Create(AgentArgs(HttpPort, extra),
            l => l.AddProvider(new XunitLoggerProvider(_output)).SetMinimumLevel(LogLevel.Debug));
        await app.StartAsync();
        _agents.Add(app);
        return app;
    }

    public async Task<DeployResult> DeployAsync(
        string app, IReadOnlyList<string> command, HealthCheckSpec? health = null, int count = 1, long memoryLimit = 32L << 20)
    {
        // Core deploys only onto a node whose agent is alive.
        await Eventually.True(() => Store.GetAsync(Kinds.NodeStatus, Node).Result is not null, TimeSpan.FromSeconds(20),
            "the agent's heartbeat");
        var deployer = new Deployer(Store, e => new DockerEngine(e), Logs.CreateLogger<Deployer>());
        var result = await deployer.DeployAsync(new DeploySpec
        {
            App = app, Entrypoint = "web", Image = DockerRig.Image, Pod = "p", Count = count, Nodes = [Node],
            Command = command, Ports = [new PublishedPort { Name = "http", Port = 80 }], Healthcheck = health,
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 16L << 20, MemoryLimit = memoryLimit,
        });
        Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));
        return result;
    }

    /// <summary>busybox httpd serving "ok" at / (the health endpoint tests break by removing the file).</summary>
    public static readonly string[] Httpd = ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 80 -h /www"];

    public async Task<WorkloadStatus?> StatusAsync(string id) => (await Store.GetAsync(Kinds.WorkloadStatus, id))?.Value;

    public async Task<string> MetricsAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{HttpPort}/metrics"));
    }

    /// <summary>The value of one series in Prometheus text, or null.</summary>
    public static double? Series(string metrics, string name, params (string Label, string Value)[] labels)
    {
        foreach (Match m in SeriesLine().Matches(metrics))
        {
            if (m.Groups["name"].Value != name) continue;
            var l = m.Groups["labels"].Value;
            if (labels.All(x => l.Contains($"{x.Label}=\"{x.Value}\"", StringComparison.Ordinal)))
                return double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        }
        return null;
    }

    [GeneratedRegex(@"^(?<name>[a-z_]+)(\{(?<labels>[^}]*)\})? (?<value>[0-9.eE+-]+)$", RegexOptions.Multiline)]
    private static partial Regex SeriesLine();

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents)
        {
            try
            {
                await a.StopAsync();
            }
            catch (OperationCanceledException)
            {
            }
            await a.DisposeAsync();
        }
        try
        {
            var ids = (await Host.DockerAsync(["ps", "-aq"])).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0) await Host.DockerAsync(["rm", "-f", .. ids]);
        }
        catch (CommandFailedException)
        {
        }
        _conn.Dispose();
        Logs.Dispose();
    }
}
