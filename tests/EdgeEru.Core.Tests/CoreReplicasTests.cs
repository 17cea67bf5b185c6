using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
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

/// <summary>
/// Two eru-core replicas serving at once on one registry: each is listed in cores/ while it lives; deploys
/// racing through both onto one nearly full node never overcommit it (the allocation fences); the CLI
/// given several replicas goes on with the next when the first cannot be reached.
/// </summary>
[Collection(AppsRigCollection.Name)]
public sealed class CoreReplicasTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Token = "replicas-token";
    private const long MiB = 1L << 20;
    private DockerRig _rig = null!;
    private readonly List<(WebApplication Host, string Url)> _cores = [];
    private string _prefix = "";
    private EtcdConnection _conn = null!;
    private RegistryStore _store = null!;

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 1);
        _prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(_prefix));
        _store = new RegistryStore(_conn);
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        // Room for exactly 8 instances of 32 MiB.
        await _store.PutAsync(Kinds.Nodes, _rig.Hosts[0].AsNode("dev", cpuCores: 2, memoryBytes: 256 * MiB));
        await _store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow },
            (await _store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
        foreach (var id in new[] { "one", "two" })
        {
            var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
            var host = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", url,
                "--Core:Token", Token,
                "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Core:ReplicaId", id, "--Core:LeaseTtlSeconds", "2"],
                l => l.AddProvider(new XunitLoggerProvider(output)).SetMinimumLevel(LogLevel.Warning));
            await host.StartAsync();
            _cores.Add((host, url));
        }
    }

    private static V1.Core.CoreClient Client(string url) => new(GrpcChannel.ForAddress(url).Intercept(m =>
    {
        m.Add("authorization", "Bearer " + Token);
        return m;
    }));

    private static V1.DeployRequest Six(string tag) => new()
    {
        App = "race", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 6, Tags = { tag }, Command = { "sleep", "600" },
        Networks = { [DockerRig.Network] = "" },
        Resources = new V1.Resources { MemoryRequestBytes = 32 * MiB, MemoryLimitBytes = 32 * MiB },
    };

    [Fact]
    public async Task Two_replicas_serve_at_once_never_overcommit_a_node_and_the_cli_fails_over()
    {
        await Eventually.True(async () => (await _store.ListAsync(Kinds.Cores)).Items.Count == 2, TimeSpan.FromSeconds(10),
            "both replicas in cores/");
        var listed = (await _store.ListAsync(Kinds.Cores)).Items.ToDictionary(c => c.Value.Id, c => c.Value);
        Assert.Equal([_cores[0].Url], listed["one"].Urls);

        // Twelve instances asked through two replicas at once, room for eight: exactly eight are made.
        var results = await Task.WhenAll(_cores.Select(async (c, i) =>
        {
            using var call = Client(c.Url).Deploy(Six($"r{i}"));
            var events = new List<V1.DeployEvent>();
            try
            {
                await foreach (var e in call.ResponseStream.ReadAllAsync()) events.Add(e);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted)
            {
                output.WriteLine($"replica {i}: refused, no capacity: {ex.Status.Detail}");
            }
            return events.Where(e => e.Instance is not null).Select(e => e.Instance).ToList();
        }));
        var made = results.SelectMany(r => r).Where(i => i.Error.Length == 0).ToList();
        foreach (var failed in results.SelectMany(r => r).Where(i => i.Error.Length > 0))
            output.WriteLine("refused instance: " + failed.Error);
        var records = (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).ToList();
        var containers = await RigDocker.ContainersAsync(_rig);
        Assert.Equal(8, made.Count);
        Assert.Equal(records.Select(r => r.Id).Order(), containers.Select(c => c.Id).Order());
        Assert.True(records.Sum(r => r.Resources.MemoryRequestBytes) <= 256 * MiB);
        Assert.Equal(2, results.Count(r => r.Any(i => i.Error.Length == 0))); // both replicas made some

        // The CLI with a dead replica first goes on with the next.
        var dead = $"http://127.0.0.1:{Ports.FreeTcp()}";
        var (code, text) = await EruCli.RunAsync(output, "node", "ls", "--core", $"{dead},{_cores[1].Url}", "--token", Token);
        Assert.Equal(0, code);
        Assert.Contains("h1", text, StringComparison.Ordinal);
        Assert.Contains($"eru-core at {dead}", text, StringComparison.Ordinal);

        // A replica that stops cleanly leaves cores/ at once.
        await _cores[0].Host.StopAsync();
        await Eventually.True(async () => (await _store.ListAsync(Kinds.Cores)).Items.Select(c => c.Value.Id).SequenceEqual(["two"]),
            TimeSpan.FromSeconds(10), "only replica two in cores/");
        var (rmCode, _) = await EruCli.RunAsync(output, ["rm", .. records.Select(r => r.Name), "--stop-timeout", "0",
            "--core", $"{_cores[0].Url},{_cores[1].Url}",
            "--token", Token]);
        Assert.Equal(0, rmCode);
        Assert.Empty(await RigDocker.ContainersAsync(_rig));
    }

    public async Task DisposeAsync()
    {
        foreach (var (host, _) in _cores) await host.DisposeAsync();
        if (_rig is not null) await _rig.DisposeAsync();
    }

    public void Dispose() => _conn?.Dispose();
}
