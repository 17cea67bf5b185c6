using EdgeEru.Core.Deploy;
using EdgeEru.Core.Scheduling;
using EdgeEru.Dev;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// A routed network on a routed rig (bird in every host's namespace and in the root namespace): Core gives each node a
/// block of the pool and each container an address of its node's block; containers are reached across hosts and
/// from the root namespace by BGP-learned routes only.
/// </summary>
[Collection(DockerRigCollection.Name)]
public sealed class RoutedNetworkTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const long MiB = 1L << 20;
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);
    private DockerRig? _rig;
    private EtcdConnection? _conn;
    private RegistryStore _store = null!;
    private RegistryLease? _lease;

    private DockerRig Rig => _rig ?? throw new InvalidOperationException("no rig");

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 2, network: RigNetwork.Routed);
        _conn = new EtcdConnection(etcd.Options());
        _store = new RegistryStore(_conn);
        _lease = await _store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        foreach (var h in _rig.Hosts)
        {
            await _store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 256 * MiB));
            var status = new NodeStatus { Node = $"h{h.Index}", HeartbeatAt = DateTimeOffset.UtcNow };
            await _store.PutAsync(Kinds.NodeStatus, status, _lease.Id);
        }
    }

    private Deployer Deployer() => new(_store, e => new DockerEngine(e), _logs.CreateLogger<Deployer>());

    private static DeploySpec Spec(int count, string address = "") => new()
    {
        App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = count,
        Command = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www"],
        Networks = new Dictionary<string, string> { [DockerRig.RoutedNetwork] = address },
        MemoryRequest = 16 * MiB, MemoryLimit = 16 * MiB,
    };

    [Fact]
    public async Task Containers_get_addresses_of_their_hosts_blocks_and_reach_each_other_by_routes()
    {
        // h1 has the network already, on a block it does not hold (left from before) and with no container: made again.
        var pool = System.Net.IPNetwork.Parse(Rig.RoutedPool);
        var last = pool.BaseAddress.GetAddressBytes();
        last[2] += 31; // the pool's last /24, far from the blocks the nodes get
        var stale = $"{new System.Net.IPAddress(last)}/26";
        await Rig.Hosts[0].DockerAsync(["network", "create", "-d", "bridge", "--subnet", stale, DockerRig.RoutedNetwork]);
        var deployer = Deployer();
        await deployer.RecordPoolAsync(new IpPool { Network = DockerRig.RoutedNetwork, Cidr = Rig.RoutedPool, BlockSize = 26 });
        var result = await deployer.DeployAsync(Spec(4));
        Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));

        // Each node got a block (the lowest free ones), each container the lowest free addresses of its node's block.
        var recorded = (await _store.GetAsync(Kinds.IpPools, DockerRig.RoutedNetwork))!.Value;
        Assert.Equal(["h1", "h2"], recorded.Blocks.Keys.Order());
        Assert.Equal(2, recorded.Blocks.Values.Distinct().Count());
        var records = (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).ToList();
        Assert.Equal(4, records.Count);
        foreach (var group in records.GroupBy(r => r.Node))
        {
            var block = recorded.Blocks[group.Key];
            var addresses = group.Select(r => r.Networks[DockerRig.RoutedNetwork]).Order(StringComparer.Ordinal).ToList();
            Assert.All(addresses, a => Assert.True(IpBlocks.IsContainerAddress(block, a), $"{a} is not in {group.Key}'s block {block}"));
            Assert.Equal(addresses.Count, addresses.Distinct().Count());
        }
        Assert.Equal(recorded.Blocks["h1"], (await Rig.Hosts[0].DockerAsync(
            ["network", "inspect", DockerRig.RoutedNetwork, "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"])).Trim());

        // Every BGP session is up: each host with the root namespace's speaker, which reflects between them.
        await Eventually.True(async () => Bird.Established(await Rig.EdgeBird!.CommandAsync("show", "protocols")) == 2
            && (await Task.WhenAll(Rig.Hosts.Select(h => h.Bird!.CommandAsync("show", "protocols")))).All(p => Bird.Established(p) == 1),
            TimeSpan.FromSeconds(30), "every BGP session established");

        // The root namespace reaches every container through its host (no address of the pool is on-link there).
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        foreach (var r in records)
        {
            var address = r.Networks[DockerRig.RoutedNetwork];
            var body = await Eventually.Value(async () => await TryGetAsync(http, address), TimeSpan.FromSeconds(30),
                $"{r.Name} at {address} answers the root namespace");
            Assert.Equal(r.Id[..12], body.Trim());
        }

        // Across hosts: a container on h1 fetches from one on h2, by h1's route to h2's block, learned over BGP.
        var (on1, on2) = (records.First(r => r.Node == "h1"), records.First(r => r.Node == "h2"));
        var (h1, h2) = (Rig.Hosts[0], Rig.Hosts[1]);
        var to2 = on2.Networks[DockerRig.RoutedNetwork];
        Assert.Contains($"via {h2.Address}", await h1.Bird!.CommandAsync("show", "route", "for", to2));
        Assert.Equal(on2.Id[..12], (await h1.DockerAsync(["exec", on1.Name, "wget", "-q", "-O", "-", $"http://{to2}/"])).Trim());
        Assert.Equal(on1.Id[..12],
            (await h2.DockerAsync(["exec", on2.Name, "wget", "-q", "-O", "-", $"http://{on1.Networks[DockerRig.RoutedNetwork]}/"])).Trim());

        // A fixed address outside the node's block is refused, naming the block.
        var inBlock2 = IpBlocks.PickAddress(recorded, "h2", recorded.Blocks["h2"], new HashSet<string>());
        var wrong = await deployer.DeployAsync(Spec(1, inBlock2) with { Nodes = ["h1"] });
        Assert.Contains($"is not a container address of node h1's block {recorded.Blocks["h1"]}", Assert.Single(wrong.Instances).Error);

        // IPv6 on a routed network is refused before anything is made.
        var v6 = await deployer.DeployAsync(Spec(1, ",fd00:e1::5"));
        Assert.Contains($"network {DockerRig.RoutedNetwork} is routed (ip pool {Rig.RoutedPool}): IPv4 only", v6.Error);
        Assert.Empty(v6.Instances);
    }

    [Fact]
    public async Task An_address_taken_after_core_looked_is_picked_again()
    {
        var h1 = Rig.Hosts[0];
        var squatted = "";
        var deployer = new Deployer(_store, e => new DockerEngine(e), _logs.CreateLogger<Deployer>())
        {
            // Another deploy's container starts on the address Core just picked on h1 (in Docker, not yet recorded).
            Interleave = async (point, ct) =>
            {
                if (point != "address-picked" || squatted.Length > 0) return;
                var pool = (await _store.GetAsync(Kinds.IpPools, DockerRig.RoutedNetwork, ct))!.Value;
                squatted = IpBlocks.PickAddress(pool, "h1", pool.Blocks["h1"], new HashSet<string>());
                await h1.DockerAsync(["run", "-d", "--name", "squatter", "--network", DockerRig.RoutedNetwork, "--ip", squatted,
                    DockerRig.Image, "sleep", "600"]);
            },
        };
        await deployer.RecordPoolAsync(new IpPool { Network = DockerRig.RoutedNetwork, Cidr = Rig.RoutedPool, BlockSize = 26 });
        var result = await deployer.DeployAsync(Spec(1) with { Nodes = ["h1"] });
        Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));
        var record = Assert.Single((await _store.ListAsync(Kinds.Workloads)).Items).Value;
        var pool = (await _store.GetAsync(Kinds.IpPools, DockerRig.RoutedNetwork))!.Value;
        Assert.NotEqual("", squatted);
        Assert.Equal(IpBlocks.PickAddress(pool, "h1", pool.Blocks["h1"], new HashSet<string> { squatted }),
            record.Networks[DockerRig.RoutedNetwork]);
    }

    private static async Task<string?> TryGetAsync(HttpClient http, string address)
    {
        try
        {
            return await http.GetStringAsync(new Uri($"http://{address}/"));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null; // httpd starting, or the route not yet learned
        }
    }

    public async Task DisposeAsync()
    {
        if (_rig is not null) await _rig.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
        _conn?.Dispose();
    }

    public void Dispose() => _logs.Dispose();
}
