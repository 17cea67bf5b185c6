using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeEru.Agent;
using EdgeEru.Docker;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>eru-core's gRPC API and the eru CLI against real etcd and two real dockerd hosts with agents.</summary>
[Collection(DockerRigCollection.Name)]
public sealed class CoreApiTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const long MiB = 1L << 20;
    private const string Token = "s3cret-token";
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);
    private DockerRig _rig = null!;
    private WebApplication _core = null!;
    private string _url = "";
    private string _prefix = "";
    private GrpcChannel _channel = null!;
    private V1.Core.CoreClient _api = null!;
    private EtcdConnection _conn = null!;
    private RegistryWatcher _watcher = null!;
    private readonly CancellationTokenSource _stopAgents = new();
    private readonly List<(NodeAgent Agent, Task Run)> _agents = [];

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 2);
        _prefix = EtcdFixture.NewPrefix();
        _url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", _url, "--Core:Token", Token,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"], l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(_url);
        _api = Client(Token);
        _conn = new EtcdConnection(etcd.Options(_prefix));
        _watcher = new RegistryWatcher(_conn, _logs.CreateLogger<RegistryWatcher>());
        _watcher.Start();
    }

    private V1.Core.CoreClient Client(string? token) => new(_channel.Intercept(m =>
    {
        if (token is not null) m.Add("authorization", "Bearer " + token);
        return m;
    }));

    private void StartAgents()
    {
        var store = new RegistryStore(_conn);
        foreach (var h in _rig.Hosts)
        {
            var agent = new NodeAgent(store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
                new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
                _logs.CreateLogger<NodeAgent>());
            _agents.Add((agent, Task.Run(() => agent.RunAsync(_stopAgents.Token))));
        }
    }

    private static V1.DeployRequest Web(
        int count, string tag, string command = "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www") => new()
    {
        App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = count, Tags = { tag },
        Command = { "sh", "-c", command },
        Ports = { new V1.PublishedPort { Name = "http", Port = 80 } },
        Healthcheck = new V1.HealthCheck
        {
            Http = new V1.HttpCheck { Port = "http", Path = "/" }, IntervalMs = 300, TimeoutMs = 500, UnhealthyAfter = 1,
        },
        Networks = { [DockerRig.Network] = "" },
        Resources = new V1.Resources { MemoryRequestBytes = 32 * MiB, MemoryLimitBytes = 32 * MiB },
    };

    private static async Task<List<V1.DeployEvent>> Events(AsyncServerStreamingCall<V1.DeployEvent> call)
    {
        using (call)
        {
            var list = new List<V1.DeployEvent>();
            await foreach (var e in call.ResponseStream.ReadAllAsync()) list.Add(e);
            return list;
        }
    }

    private Task<List<ContainerState>> Containers() => RigDocker.ContainersAsync(_rig);

    private async Task<List<V1.Workload>> Workloads() =>
        [.. (await _api.ListWorkloadsAsync(new V1.ListWorkloadsRequest { App = "hello" })).Workloads];

    [Fact]
    public async Task Pods_nodes_capacity_deploy_hooks_control_replace_and_remove_through_the_API()
    {
        // No token, a wrong token: refused before anything runs.
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() =>
            Client(null).ListPodsAsync(new V1.ListPodsRequest()).ResponseAsync)).StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() =>
            Client("nope").ListPodsAsync(new V1.ListPodsRequest()).ResponseAsync)).StatusCode);

        await _api.AddPodAsync(new V1.AddPodRequest { Name = "dev" });
        Assert.Equal(StatusCode.AlreadyExists, (await Assert.ThrowsAsync<RpcException>(() =>
            _api.AddPodAsync(new V1.AddPodRequest { Name = "dev" }).ResponseAsync)).StatusCode);
        var badPod = await Assert.ThrowsAsync<RpcException>(() =>
            _api.AddPodAsync(new V1.AddPodRequest { Name = "Bad_Pod" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badPod.StatusCode);
        Assert.Contains("Bad_Pod", badPod.Status.Detail, StringComparison.Ordinal);

        // h1 without capacity takes Docker's; h2 has its own; a node whose engine does not answer is refused.
        var (h1, h2) = (_rig.Hosts[0], _rig.Hosts[1]);
        var n1 = await _api.AddNodeAsync(new V1.AddNodeRequest
        {
            Node = new V1.Node { Name = "h1", Pod = "dev", Endpoint = h1.Endpoint, Address = h1.Address, Networks = { DockerRig.Network } },
        });
        Assert.Equal(Environment.ProcessorCount, n1.Capacity.CpuCores);
        Assert.True(n1.Capacity.MemoryBytes > 256 * MiB);
        await _api.AddNodeAsync(new V1.AddNodeRequest
        {
            Node = new V1.Node
            {
                Name = "h2", Pod = "dev", Endpoint = h2.Endpoint, Address = h2.Address, Address6 = "fd00:e0:0:1::12",
                Networks = { DockerRig.Network }, Capacity = new V1.NodeCapacity { CpuCores = 2, MemoryBytes = 128 * MiB },
            },
        });
        var dead = await Assert.ThrowsAsync<RpcException>(() => _api.AddNodeAsync(new V1.AddNodeRequest
        {
            Node = new V1.Node { Name = "h9", Pod = "dev", Endpoint = "unix:///tmp/no-such-docker.sock" },
        }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, dead.StatusCode);
        Assert.Contains("did not answer", dead.Status.Detail, StringComparison.Ordinal);
        var missingPod = await Assert.ThrowsAsync<RpcException>(() => _api.AddNodeAsync(new V1.AddNodeRequest
        {
            Node = new V1.Node { Name = "h8", Pod = "nope", Endpoint = h1.Endpoint },
        }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missingPod.StatusCode);

        StartAgents();
        await Eventually.True(() => _api.ListNodes(new V1.ListNodesRequest()).Nodes.All(n => n.Alive), TimeSpan.FromSeconds(15),
            "both nodes alive");
        Assert.Equal("fd00:e0:0:1::12", _api.ListNodes(new V1.ListNodesRequest()).Nodes.Single(n => n.Name == "h2").Address6);

        // A dry run: 128 MiB / 32 MiB on h2; nothing is created.
        var fit = await _api.CapacityAsync(new V1.CapacityRequest { Request = Web(1, "v1") });
        Assert.Equal(4, fit.Nodes.Single(n => n.Node == "h2").Capacity);
        Assert.Empty(await Containers());

        // Bad fields are named, all at once.
        var bad = Web(0, "Not_A_Label");
        bad.Restart = "sometimes";
        var invalid = await Assert.ThrowsAsync<RpcException>(() => Events(_api.Deploy(bad)));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        foreach (var field in new[] { "count 0", "tag \"Not_A_Label\"", "restart \"sometimes\"" })
            Assert.Contains(field, invalid.Status.Detail, StringComparison.Ordinal);
        var tooBig = Web(1, "v1");
        tooBig.Resources.MemoryRequestBytes = tooBig.Resources.MemoryLimitBytes = 64L << 30;
        var exhausted = await Assert.ThrowsAsync<RpcException>(() => Events(_api.Deploy(tooBig)));
        Assert.Equal(StatusCode.ResourceExhausted, exhausted.StatusCode);
        Assert.Contains("h2", exhausted.Status.Detail, StringComparison.Ordinal); // the per-node reason

        // Deploy 3 with hooks: after_start leaves a mark; before_stop calls us back over the rig's bridge.
        using var callbacks = new TcpListener(IPAddress.Parse(_rig.BridgeAddress), 0);
        callbacks.Start();
        var callbackPort = ((IPEndPoint)callbacks.LocalEndpoint).Port;
        var stopping = 0;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await callbacks.AcceptTcpClientAsync();
                var buffer = new byte[256];
                var n = await client.GetStream().ReadAsync(buffer);
                if (Encoding.ASCII.GetString(buffer, 0, n).StartsWith("GET /stopping", StringComparison.Ordinal))
                    Interlocked.Increment(ref stopping);
                await client.GetStream().WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray());
            }
        });
        var v1 = Web(3, "v1");
        v1.Hooks = new V1.Hooks
        {
            AfterStart = { "sh -c 'hostname > /tmp/after_start'" },
            BeforeStop = { $"wget -q -O /dev/null http://{_rig.BridgeAddress}:{callbackPort}/stopping" },
        };
        var events = await Events(_api.Deploy(v1));
        Assert.Equal(V1.DeployEvent.EventOneofCase.Planned, events[0].EventCase);
        Assert.Equal(3, events[0].Planned.PerNode.Values.Sum());
        var created = events.Where(e => e.EventCase == V1.DeployEvent.EventOneofCase.Instance).Select(e => e.Instance).ToList();
        Assert.Equal(3, created.Count);
        Assert.All(created, i => Assert.Equal("", i.Error));
        Assert.Equal(3, events[^1].Summary.Created);
        foreach (var i in created)
        {
            var host = _rig.Hosts.Single(h => $"h{h.Index}" == i.Node);
            Assert.Equal(i.WorkloadId[..12], (await host.DockerAsync(["exec", i.WorkloadId, "cat", "/tmp/after_start"])).Trim());
        }
        await Eventually.True(async () => (await Workloads()).Count(w => w.Live) == 3, TimeSpan.FromSeconds(20), "3 live");

        // Control: stop keeps the record (its before_stop hook runs first), start brings it back.
        var first = created[0];
        await Results(_api.Control(new V1.ControlRequest { Action = V1.ControlAction.Stop, Workloads = { first.Name } }));
        Assert.False((await Containers()).Single(c => c.Id == first.WorkloadId).Running);
        Assert.Equal(1, Volatile.Read(ref stopping));
        await Results(_api.Control(new V1.ControlRequest { Action = V1.ControlAction.Start, Workloads = { first.WorkloadId[..10] } }));
        Assert.True((await Containers()).Single(c => c.Id == first.WorkloadId).Running);
        await Eventually.True(async () => (await Workloads()).Count(w => w.Live) == 3, TimeSpan.FromSeconds(20), "3 live again");

        // Rolling replace to v2: every new one healthy before the old ones go; before_stop ran for each old one.
        var replaced = await Events(
            _api.Replace(new V1.ReplaceRequest { Request = Web(1, "v2"), BatchSize = 2, HealthTimeoutMs = 30_000 }));
        Assert.Equal(3, replaced[^1].Summary.Created);
        var now = await Workloads();
        Assert.Equal(3, now.Count);
        Assert.All(now, w => Assert.Equal(["v2"], w.Tags));
        Assert.Equal(now.Select(w => w.Id).Order(), (await Containers()).Select(c => c.Id).Order());
        Assert.Equal(1 + 3, Volatile.Read(ref stopping));

        // A replacement that never becomes healthy stops the rollout and leaves the serving ones alone.
        var broken = await Events(_api.Replace(new V1.ReplaceRequest { Request = Web(1, "v3", "sleep 600"), HealthTimeoutMs = 2_000 }));
        Assert.Contains(broken, e =>
            e.EventCase == V1.DeployEvent.EventOneofCase.Note && e.Note.Contains("replace stopped", StringComparison.Ordinal));
        var after = await Workloads();
        Assert.Equal(now.Select(w => w.Id).Order(), after.Select(w => w.Id).Order());
        Assert.Equal(after.Select(w => w.Id).Order(), (await Containers()).Select(c => c.Id).Order());

        // Bypass: an unschedulable node gets nothing new, and keeps what it has.
        await _api.SetNodeAsync(new V1.SetNodeRequest { Name = "h1", Unschedulable = true, SetLabels = { ["disk"] = "ssd" } });
        var bypassed = await _api.CapacityAsync(new V1.CapacityRequest { Request = Web(1, "v1") });
        Assert.Equal(["h2"], bypassed.Nodes.Select(n => n.Node));
        Assert.Equal(now.Count(w => w.Node == "h1"), (await Workloads()).Count(w => w.Node == "h1"));

        // The eru CLI, as a user runs it.
        var cli = await Eru("capacity", Path.Combine(Repo.Root, "examples", "hello.yaml"), "--pod", "dev", "--memory", "32M", "--json");
        Assert.Equal(0, cli.Code);
        Assert.Contains("\"total\"", cli.Output, StringComparison.Ordinal);
        cli = await Eru("deploy", Path.Combine(Repo.Root, "examples", "hello.yaml"), "--pod", "dev", "--memory", "32M",
            "--network", DockerRig.Network, "--tag", "cli", "--env", "VERSION=cli");
        Assert.True(cli.Code == 0, cli.Output);
        Assert.Contains("1 created, 0 failed", cli.Output, StringComparison.Ordinal);
        cli = await Eru("node", "ls");
        Assert.Contains("no (bypass)", cli.Output, StringComparison.Ordinal);

        // Realloc through the CLI: one workload by name, then every instance of app.entrypoint; too much is
        // refused per workload with the reason; an unknown name is NOT_FOUND.
        var target = (await Workloads()).First();
        cli = await Eru("realloc", target.Name, "--memory", "24M");
        Assert.True(cli.Code == 0, cli.Output);
        Assert.Contains($"reallocated {target.Name} ({target.Node}): memory 24M/24M", cli.Output, StringComparison.Ordinal);
        Assert.Equal(24 * MiB, (await Containers()).Single(c => c.Id == target.Id).MemoryLimit);
        Assert.Equal(24 * MiB, (await Workloads()).Single(w => w.Id == target.Id).Resources.MemoryRequestBytes);
        cli = await Eru("realloc", "hello.web", "--cpu", "0.2");
        Assert.True(cli.Code == 0, cli.Output);
        Assert.All(await Containers(), c => Assert.Equal(20_000, c.CpuQuota));
        Assert.All(await Workloads(), w => Assert.Equal(0.2, w.Resources.Cpu));
        cli = await Eru("realloc", "hello", "--memory", "100T");
        Assert.Equal(1, cli.Code);
        Assert.Contains("refused", cli.Output, StringComparison.Ordinal);
        Assert.Contains("free memory", cli.Output, StringComparison.Ordinal);
        Assert.Equal(24 * MiB, (await Containers()).Single(c => c.Id == target.Id).MemoryLimit);
        cli = await Eru("realloc", "nosuchapp", "--cpu", "1");
        Assert.Equal(1, cli.Code);
        Assert.Contains("NotFound: no workload, app or app.entrypoint nosuchapp", cli.Output, StringComparison.Ordinal);
        cli = await Eru("deploy", Path.Combine(Repo.Root, "examples", "hello.yaml"), "--pod", "dev", "--count", "0");
        Assert.Equal(2, cli.Code);
        Assert.Contains("count 0", cli.Output, StringComparison.Ordinal);
        cli = await RunEru(["pod", "ls", "--core", _url, "--token", "wrong"]);
        Assert.Equal(2, cli.Code);
        Assert.Contains("Unauthenticated", cli.Output, StringComparison.Ordinal);

        // Remove everything by name: registry and Docker end empty, together.
        var names = (await Workloads()).Select(w => w.Name).ToList();
        cli = await Eru(["rm", .. names, "--stop-timeout", "1"]);
        Assert.True(cli.Code == 0, cli.Output);
        Assert.Empty(await Workloads());
        Assert.Empty(await Containers());
        var busy = await Assert.ThrowsAsync<RpcException>(() =>
            _api.RemovePodAsync(new V1.RemovePodRequest { Name = "dev" }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, busy.StatusCode);
    }

    private static async Task Results(AsyncServerStreamingCall<V1.InstanceResult> call)
    {
        using (call)
            await foreach (var r in call.ResponseStream.ReadAllAsync()) Assert.Equal("", r.Error);
    }

    private Task<(int Code, string Output)> Eru(params string[] args) => RunEru([.. args, "--core", _url, "--token", Token]);

    private Task<(int Code, string Output)> RunEru(string[] args) => EruCli.RunAsync(output, args);

    public async Task DisposeAsync()
    {
        await _stopAgents.CancelAsync();
        foreach (var (agent, run) in _agents)
        {
            await run;
            await agent.DisposeAsync();
        }
        await _watcher.DisposeAsync();
        _conn.Dispose();
        _channel.Dispose();
        await _core.StopAsync();
        await _core.DisposeAsync();
        await _rig.DisposeAsync();
    }

    public void Dispose()
    {
        _stopAgents.Dispose();
        _logs.Dispose();
    }
}
