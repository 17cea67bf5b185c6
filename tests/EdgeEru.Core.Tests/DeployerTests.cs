using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>Deploys through real dockerd hosts, recorded in a real etcd.</summary>
[Collection(DockerRigCollection.Name)]
public sealed class DeployerTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const long MiB = 1L << 20;
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);
    private DockerRig? _rig;
    private EtcdConnection? _conn;
    private RegistryStore _store = null!;
    private RegistryLease? _lease;

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 2);
        _conn = new EtcdConnection(etcd.Options());
        _store = new RegistryStore(_conn);
        _lease = await _store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        foreach (var h in _rig.Hosts)
        {
            var name = $"h{h.Index}";
            await _store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 256 * MiB));
            await _store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = name, HeartbeatAt = DateTimeOffset.UtcNow }, _lease.Id);
        }
    }

    private Deployer Deployer() => new(_store, e => new DockerEngine(e), _logs.CreateLogger<Deployer>());

    private static DeploySpec Spec(
        int count, long memory = 64 * MiB, double cpu = 0.5, bool bind = false, Strategy strategy = Strategy.Auto) => new()
    {
        App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = count,
        Command = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www"],
        Ports = [new PublishedPort { Name = "http", Port = 80 }],
        Networks = new Dictionary<string, string> { [DockerRig.Network] = "" },
        Tags = ["v1"], MemoryRequest = memory, MemoryLimit = memory, Cpu = cpu, CpuBind = bind, Strategy = strategy,
    };

    private async Task<List<Workload>> Records() => [.. (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value)];

    private Task<List<ContainerState>> Containers() => RigDocker.ContainersAsync(_rig!);

    [Fact]
    public async Task Auto_spreads_instances_over_hosts_and_registry_and_docker_agree()
    {
        var result = await Deployer().DeployAsync(Spec(4));
        Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));
        var records = await Records();
        Assert.Equal(4, records.Count);
        Assert.Equal([2, 2], records.GroupBy(r => r.Node).Select(g => g.Count()).Order());
        var containers = await Containers();
        Assert.Equal(records.Select(r => r.Id).Order(), containers.Select(c => c.Id).Order());
        foreach (var r in records)
        {
            var c = containers.Single(c => c.Id == r.Id);
            Assert.Equal(r.Name, c.Name);
            Assert.Equal(64 * MiB, c.MemoryLimit);
            Assert.Equal(50_000, c.CpuQuota);
            Assert.Equal(c.Addresses[DockerRig.Network], r.Networks[DockerRig.Network]); // the address Docker gave is recorded
            Assert.Equal(r.Ident, c.Labels[DockerEngine.IdentLabel]);
        }
    }

    [Fact]
    public async Task Removing_stops_the_container_and_deletes_the_record_freeing_the_room()
    {
        var deployed = await Deployer().DeployAsync(Spec(8)); // both hosts full
        Assert.True(deployed.Ok);
        Assert.Contains("no capacity", (await Deployer().DeployAsync(Spec(1))).Error, StringComparison.Ordinal);
        var victim = deployed.Instances[0].WorkloadId!;
        var removed = await Deployer().RemoveAsync([victim, "not-a-workload"], TimeSpan.Zero);
        Assert.Null(removed[0].Error);
        Assert.Equal("no workload not-a-workload", removed[1].Error);
        Assert.DoesNotContain(victim, (await Records()).Select(r => r.Id));
        Assert.DoesNotContain(victim, (await Containers()).Select(c => c.Id));
        Assert.True((await Deployer().DeployAsync(Spec(1))).Ok); // its room is free again
    }

    [Fact]
    public async Task Bound_instances_get_distinct_cores_and_the_cpuset_is_on_the_container()
    {
        var result = await Deployer().DeployAsync(Spec(2, bind: true, cpu: 1, strategy: Strategy.Fill) with { Nodes = ["h1"] });
        Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));
        var records = await Records();
        Assert.Equal([0, 1], records.SelectMany(r => r.Resources.CpuBind.Select(b => b.Core)).Order());
        var containers = await Containers();
        Assert.Equal(["0", "1"], containers.Select(c => c.Cpuset).Order());
        // The node's two cores are bound: a third bound instance has no room, said per node.
        var full = await Deployer().DeployAsync(Spec(1, bind: true, cpu: 1) with { Nodes = ["h1"] });
        Assert.Contains("no capacity", full.Error, StringComparison.Ordinal);
        Assert.Contains("h1: no core plan for 1 bound cpus", full.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_deploys_never_overcommit_memory_and_leave_no_unrecorded_container()
    {
        // 256 MiB per host, 64 MiB each: room for 4 per host, 8 in all; two deploys ask for 6 each at once.
        var deployer = Deployer();
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() => deployer.DeployAsync(Spec(6)))));
        var records = await Records();
        foreach (var g in records.GroupBy(r => r.Node))
            Assert.True(g.Sum(r => r.Resources.MemoryRequestBytes) <= 256 * MiB, $"{g.Key} overcommitted: {g.Count()} instances");
        Assert.True(records.Count <= 8);
        var created = results.SelectMany(r => r.Instances).Count(i => i.Error is null);
        Assert.Equal(created, records.Count);
        Assert.Equal(records.Select(r => r.Id).Order(), (await Containers()).Select(c => c.Id).Order()); // nothing leaked
    }

    [Fact]
    public async Task Bad_specs_and_dead_named_nodes_are_refused_with_the_reason()
    {
        var bad = await Deployer().DeployAsync(Spec(1) with { Entrypoint = "web_1", MemoryRequest = 10, MemoryLimit = 5 });
        Assert.Contains("entrypoint \"web_1\" must be a DNS label", bad.Error, StringComparison.Ordinal);
        Assert.Contains("memory request 10 is above the limit 5", bad.Error, StringComparison.Ordinal);
        await _store.DeleteAsync(Kinds.NodeStatus, "h2");
        var dead = await Deployer().DeployAsync(Spec(1) with { Nodes = ["h2"] });
        Assert.Equal("node h2 has no heartbeat: it is not alive (force to use it anyway)", dead.Error);
        var image = await Deployer().DeployAsync(Spec(1) with { Image = "no/such:image" });
        Assert.False(image.Ok);
        Assert.NotNull(Assert.Single(image.Instances).Error); // failed instance rolled back...
        Assert.Empty(await Records());                          // ...nothing recorded
        Assert.Empty(await Containers());                       // ...nothing left in Docker
    }

    public async Task DisposeAsync()
    {
        if (_rig is not null) await _rig.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
        _conn?.Dispose();
    }

    public void Dispose() => _logs.Dispose();
}
