using System.Net;
using DnsClient;
using EdgeEru.Agent;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Dns;
using EdgeEru.Lb;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// The loop closed on real parts: Core deploys containers on two netns hosts, each host's agent reports
/// them healthy under its lease, eru-dns answers them and eru-lb routes to them; a killed container and
/// a stopped agent take their instances out.
/// </summary>
[Collection(DockerRigCollection.Name)]
public sealed class PlatformTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);

    public void Dispose() => _logs.Dispose();

    [Fact]
    public async Task Deployed_instances_become_live_in_DNS_and_LB_and_leave_when_they_die()
    {
        await using var rig = await DockerRig.StartAsync(hosts: 2);
        var prefix = EtcdFixture.NewPrefix();
        using var conn = new EtcdConnection(etcd.Options(prefix));
        var store = new RegistryStore(conn);
        foreach (var h in rig.Hosts)
            await store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 1L << 30));

        // An agent per host, in this process (they reach the containers through the bridge, as on a host),
        // following the registry through one watcher.
        await using var watcher = new RegistryWatcher(conn, _logs.CreateLogger<RegistryWatcher>());
        watcher.Start();
        using var stopAgents = new CancellationTokenSource();
        var agents = rig.Hosts.Select(h => new NodeAgent(store, () => watcher.Current,
            new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
            new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
            _logs.CreateLogger<NodeAgent>())).ToList();
        var running = agents.Select(a => Task.Run(() => a.RunAsync(stopAgents.Token))).ToList();
        await Eventually.True(async () => (await store.ListAsync(Kinds.NodeStatus)).Items.Count == 2, TimeSpan.FromSeconds(15),
            "both heartbeats");

        var dnsPort = Ports.FreeTcp();
        await using var dns = DnsHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix,
            "--Dns:Port", dnsPort.ToString(),
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"], l => l.AddProvider(new XunitLoggerProvider(output)));
        await dns.StartAsync();
        var lbPort = Ports.FreeTcp();
        await using var lb = LbHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix,
            "--Lb:Urls", $"http://127.0.0.1:{lbPort}",
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Lb:AdminUrls", $"http://127.0.0.1:{Ports.FreeTcp()}",
            "--Lb:AdminToken", "t"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await lb.StartAsync();
        await store.PutAsync(Kinds.LbDomains, Samples.LbDomain("hello.test"));

        var deployer = new Deployer(store, e => new DockerEngine(e), _logs.CreateLogger<Deployer>());
        var deployed = await deployer.DeployAsync(new DeploySpec
        {
            App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 3, Tags = ["v1"],
            Command = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www"],
            Ports = [new PublishedPort { Name = "http", Port = 80 }],
            Healthcheck = new HealthCheckSpec
            {
                Http = new HttpCheck { Port = "http", Path = "/" }, IntervalMs = 300, TimeoutMs = 500, UnhealthyAfter = 1,
            },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 32L << 20, MemoryLimit = 32L << 20,
        });
        Assert.True(deployed.Ok, deployed.Error ?? string.Join("; ", deployed.Instances.Select(i => i.Error)));

        var resolver = new LookupClient(new LookupClientOptions(new NameServer(IPAddress.Loopback, dnsPort))
        {
            UseCache = false, Retries = 0, Timeout = TimeSpan.FromSeconds(2),
        });
        async Task<int> Live() => (await resolver.QueryAsync("web.hello.eru", QueryType.A)).Answers.ARecords().Count();
        await EventuallyAsync(async () => await Live() == 3, "3 instances in DNS once the agents call them healthy");

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        async Task<string> ViaLb()
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{lbPort}/");
            req.Headers.Host = "hello.test";
            using var resp = await http.SendAsync(req);
            return $"{(int)resp.StatusCode} {(await resp.Content.ReadAsStringAsync()).Trim()}";
        }
        var hostnames = deployed.Instances.Select(i => i.WorkloadId![..12]).ToHashSet();
        var answer = await ViaLb();
        Assert.True(hostnames.Contains(answer[4..]), $"LB answered \"{answer}\", not one of the instances");

        // A container dies: its agent says so, DNS drops it, the LB keeps answering from the others.
        var victim = deployed.Instances.First(i => i.Node == "h1");
        await rig.Hosts[0].DockerAsync(["kill", victim.WorkloadId!]);
        await EventuallyAsync(async () => await Live() == 2, "the killed instance leaves DNS");
        for (var i = 0; i < 10; i++) Assert.StartsWith("200 ", await ViaLb(), StringComparison.Ordinal);

        // h2's agent stops (clean shutdown revokes its lease): h2's instances and heartbeat go with it.
        var h2Live = deployed.Instances.Count(i => i.Node == "h2");
        await agents[1].DisposeAsync();
        await EventuallyAsync(async () => await Live() == 2 - h2Live || h2Live == 0, "h2's instances leave with its agent");

        await stopAgents.CancelAsync();
        await Task.WhenAll(running);
        foreach (var a in agents) await a.DisposeAsync();
        await dns.StopAsync();
        await lb.StopAsync();
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (Exception ex) when (ex is DnsResponseException or HttpRequestException or TaskCanceledException)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for: " + what);
            await Task.Delay(100);
        }
    }
}
