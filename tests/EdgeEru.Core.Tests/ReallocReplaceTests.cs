using EdgeEru.Agent;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Dev;
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

/// <summary>Realloc (pure re-planning).</summary>
public class ReallocPlanTests
{
    private static NodeResources Free(params int[] pieces) => new()
    {
        Name = "n", FreePieces = pieces, FreeMemory = 1L << 30, TotalMemory = 2L << 30,
    };

    private static ResourceAllocation Bound(double cpu, params (int Core, int Pieces)[] cores) => new()
    {
        MemoryRequestBytes = 1 << 20, MemoryLimitBytes = 1 << 20, CpuRequest = cpu, CpuLimit = cpu,
        CpuBind = [.. cores.Select(c => new CpuBinding { Core = c.Core, Pieces = c.Pieces })],
    };

    [Fact]
    public void Bound_cores_are_kept_when_still_valid_and_reused_when_growing_or_shrinking()
    {
        // Core 2 is ours (the free view counts it free again); cores 0 and 3 have room too.
        var (same, _) = Realloc.Plan(Free(100, 0, 100, 100), Bound(1, (2, 100)), new ReallocSpec { MemoryRequest = 2 << 20 });
        Assert.Equal([2], same!.CpuBind.Select(b => b.Core));
        Assert.Equal(2 << 20, same.MemoryLimitBytes); // the limit followed the request
        var (grown, _) = Realloc.Plan(Free(100, 0, 100, 100), Bound(1, (2, 100)), new ReallocSpec { Cpu = 2 });
        Assert.Contains(2, grown!.CpuBind.Select(b => b.Core));
        Assert.Equal(2, grown.CpuBind.Length);
        var (shrunk, _) = Realloc.Plan(Free(100, 100, 100), Bound(1.5, (1, 100), (2, 50)), new ReallocSpec { Cpu = 0.3 });
        Assert.Equal([(1, 30)], shrunk!.CpuBind.Select(b => (b.Core, b.Pieces)));
        var (unbound, _) = Realloc.Plan(Free(100, 100), Bound(1, (0, 100)), new ReallocSpec { CpuBind = false, Cpu = 0.5 });
        Assert.Empty(unbound!.CpuBind);
        Assert.Equal(0.5, unbound.CpuLimit);
    }

    [Fact]
    public void What_does_not_fit_or_is_inconsistent_is_refused_with_the_reason()
    {
        Assert.Equal("no core plan for 2 bound cpus", Realloc.Plan(Free(100, 0), Bound(1, (0, 100)), new ReallocSpec { Cpu = 2 }).Reason);
        Assert.Equal($"free memory {1L << 30} < request {2L << 30}",
            Realloc.Plan(Free(100), Bound(1, (0, 100)), new ReallocSpec { MemoryRequest = 2L << 30 }).Reason);
        Assert.Contains("memory request 4194304 is above the limit 3145728",
            Realloc.Plan(Free(100), Bound(1), new ReallocSpec { MemoryRequest = 4 << 20, MemoryLimit = 3 << 20 }).Reason,
            StringComparison.Ordinal);
        Assert.Contains("memory limit cannot be removed",
            Realloc.Plan(Free(100), Bound(1), new ReallocSpec { MemoryLimit = 0 }).Reason, StringComparison.Ordinal);
        Assert.Equal("cpu 3 > 1 cores", Realloc.Plan(Free(100), Bound(0.5) with { CpuBind = [] }, new ReallocSpec { Cpu = 3 }).Reason);
        Assert.Equal(["nothing to change: give memory, cpu or cpu bind"], new ReallocSpec().Problems());
    }
}

/// <summary>Realloc and keep-ip replace through real dockerd hosts, recorded in a real etcd.</summary>
[Collection(DockerRigCollection.Name)]
public sealed class ReallocReplaceTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const long MiB = 1L << 20;
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);
    private DockerRig _rig = null!;
    private EtcdConnection _conn = null!;
    private RegistryStore _store = null!;
    private RegistryLease? _lease;
    private RegistryWatcher? _watcher;
    private readonly CancellationTokenSource _stopAgents = new();
    private readonly List<(NodeAgent Agent, Task Run)> _agents = [];

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 2);
        _conn = new EtcdConnection(etcd.Options());
        _store = new RegistryStore(_conn);
        _lease = await _store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        foreach (var h in _rig.Hosts)
        {
            await _store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 256 * MiB));
            await _store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = $"h{h.Index}", HeartbeatAt = DateTimeOffset.UtcNow },
                _lease.Id);
        }
    }

    private Deployer Deployer() => new(_store, e => new DockerEngine(e), _logs.CreateLogger<Deployer>());

    private static DeploySpec Spec(
        string node, long memory = 64 * MiB, double cpu = 1, bool bind = true, string ip = "", string tag = "v1") => new()
    {
        App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 1, Nodes = [node],
        Command = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www"],
        Ports = [new PublishedPort { Name = "http", Port = 80 }],
        Healthcheck = new HealthCheckSpec
        {
            Http = new HttpCheck { Port = "http", Path = "/" }, IntervalMs = 300, TimeoutMs = 500, UnhealthyAfter = 1,
        },
        Networks = new Dictionary<string, string> { [DockerRig.Network] = ip },
        Tags = [tag], MemoryRequest = memory, MemoryLimit = memory, Cpu = cpu, CpuBind = bind,
    };

    private async Task<string> DeployOne(DeploySpec spec)
    {
        var r = await Deployer().DeployAsync(spec);
        Assert.True(r.Ok, r.Error ?? string.Join("; ", r.Instances.Select(i => i.Error)));
        return r.Instances[0].WorkloadId!;
    }

    private async Task<Workload> Record(string id) => (await _store.GetAsync(Kinds.Workloads, id))!.Value;

    private async Task<ContainerState> Container(string id, int host = 1)
    {
        using var engine = new DockerEngine(new DockerEndpoint { Address = _rig.Hosts[host - 1].Endpoint });
        return (await engine.InspectAsync(id))!;
    }

    private Task<List<ContainerState>> Containers() => RigDocker.ContainersAsync(_rig);

    /// <summary>The record and Docker's HostConfig say the same: memory limit, bound cores or quota.</summary>
    private async Task AssertAgree(string id)
    {
        var w = await Record(id);
        var c = await Container(id);
        Assert.Equal(w.Resources.MemoryLimitBytes, c.MemoryLimit);
        if (w.Resources.CpuBind.Length > 0)
        {
            Assert.Equal(DockerEngine.Cpuset(w.Resources.CpuBind.Select(b => b.Core)), c.Cpuset);
            Assert.True(c.CpuQuota <= 0, $"bound, yet a quota of {c.CpuQuota}");
        }
        else Assert.Equal((long)(w.Resources.CpuLimit * 100_000), c.CpuQuota);
        Assert.True(c.Running);
    }

    [Fact]
    public async Task Realloc_changes_memory_and_cores_in_place_keeping_bound_cores_and_docker_agrees()
    {
        var id = await DeployOne(Spec("h1"));
        Assert.Equal([0], (await Record(id)).Resources.CpuBind.Select(b => b.Core));
        var started = (await Container(id)).StartedAt;

        var grown = Assert.Single(await Deployer().ReallocAsync([id], new ReallocSpec { MemoryRequest = 128 * MiB, Cpu = 2 }));
        Assert.True(grown.Error is null, grown.Error);
        Assert.Equal([0, 1], (await Record(id)).Resources.CpuBind.Select(b => b.Core).Order());
        Assert.Equal(128 * MiB, (await Record(id)).Resources.MemoryLimitBytes);
        await AssertAgree(id);
        Assert.Equal("0,1", (await Container(id)).Cpuset);

        Assert.Null(Assert.Single(await Deployer().ReallocAsync([id], new ReallocSpec { Cpu = 1 })).Error);
        Assert.Equal([0], (await Record(id)).Resources.CpuBind.Select(b => b.Core)); // kept one of its cores
        await AssertAgree(id);

        Assert.Null(Assert.Single(await Deployer().ReallocAsync([id], new ReallocSpec { CpuBind = false, Cpu = 0.5 })).Error);
        Assert.Empty((await Record(id)).Resources.CpuBind);
        await AssertAgree(id);
        Assert.Equal(50_000, (await Container(id)).CpuQuota);
        Assert.Equal("0-1", (await Container(id)).Cpuset); // every core again

        Assert.Null(Assert.Single(await Deployer().ReallocAsync([id], new ReallocSpec { CpuBind = true, Cpu = 1 })).Error);
        await AssertAgree(id);
        Assert.Equal(started, (await Container(id)).StartedAt); // in place: never restarted
    }

    [Fact]
    public async Task Realloc_that_does_not_fit_is_refused_with_the_reason_and_nothing_changes()
    {
        var a = await DeployOne(Spec("h1", memory: 64 * MiB));
        await DeployOne(Spec("h1", memory: 128 * MiB));
        var before = await Record(a);

        var memory = Assert.Single(await Deployer().ReallocAsync([a], new ReallocSpec { MemoryRequest = 192 * MiB }));
        Assert.Equal($"does not fit on h1: free memory {128 * MiB} < request {192 * MiB}; it keeps its resources", memory.Error);
        var cores = Assert.Single(await Deployer().ReallocAsync([a], new ReallocSpec { Cpu = 2 }));
        Assert.Equal("does not fit on h1: no core plan for 2 bound cpus; it keeps its resources", cores.Error);
        Assert.Equal(before, await Record(a));
        await AssertAgree(a);
        Assert.Equal(64 * MiB, (await Container(a)).MemoryLimit);

        var nothing = Assert.Single(await Deployer().ReallocAsync([a], new ReallocSpec()));
        Assert.Contains("nothing to change", nothing.Error, StringComparison.Ordinal);
        Assert.Equal("no workload nope", Assert.Single(await Deployer().ReallocAsync(["nope"], new ReallocSpec { Cpu = 1 })).Error);
    }

    private void StartAgents()
    {
        _watcher = new RegistryWatcher(_conn, _logs.CreateLogger<RegistryWatcher>());
        _watcher.Start();
        foreach (var h in _rig.Hosts)
        {
            var agent = new NodeAgent(_store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
                new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
                _logs.CreateLogger<NodeAgent>());
            _agents.Add((agent, Task.Run(() => agent.RunAsync(_stopAgents.Token))));
        }
    }

    [Fact]
    public async Task Replace_with_keep_ip_hands_both_addresses_over_and_restores_the_old_ones_on_failure()
    {
        StartAgents();
        var ip = _rig.Hosts[0].ContainerAddress(7);
        var old = await DeployOne(Spec("h1", bind: false, cpu: 0.2, ip: ip));
        Assert.Equal(ip, (await Container(old)).Addresses[DockerRig.Network]);
        var ip6 = (await Container(old)).Addresses6[DockerRig.Network]; // the engine's choice: the rig is dual-stack
        Assert.StartsWith("fd65:7275:", ip6, StringComparison.Ordinal);

        // A replacement that fails (its after_start hook exits 1): the old one gets its address back and runs.
        var broken = await Deployer().ReplaceAsync(Spec("h1", bind: false, cpu: 0.2, tag: "v2") with { Nodes = [], AfterStart = ["false"] },
            new ReplaceOptions { KeepIp = true, HealthTimeout = TimeSpan.FromSeconds(30), StopTimeout = TimeSpan.FromSeconds(1) });
        Assert.False(broken.Ok);
        Assert.Contains("after_start hook `false` exited 1", broken.Error, StringComparison.Ordinal);
        var restored = await Container(old);
        Assert.True(restored.Running);
        Assert.Equal(ip, restored.Addresses[DockerRig.Network]);
        Assert.Equal(ip6, restored.Addresses6[DockerRig.Network]);
        Assert.Equal([old], (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value.Id));
        Assert.Equal([old], (await Containers()).Select(c => c.Id));

        // A good one takes the address over; the old one is gone from Docker and the registry.
        var replaced = await Deployer().ReplaceAsync(Spec("h1", bind: false, cpu: 0.2, tag: "v2") with { Nodes = [] },
            new ReplaceOptions { KeepIp = true, HealthTimeout = TimeSpan.FromSeconds(30), StopTimeout = TimeSpan.FromSeconds(1) });
        Assert.True(replaced.Ok, replaced.Error ?? string.Join("; ", replaced.Instances.Select(i => i.Error)));
        var fresh = Assert.Single(replaced.Instances).WorkloadId!;
        Assert.NotEqual(old, fresh);
        var record = Assert.Single((await _store.ListAsync(Kinds.Workloads)).Items).Value;
        Assert.Equal(fresh, record.Id);
        Assert.Equal(["v2"], record.Tags);
        Assert.Equal(ip, record.Networks[DockerRig.Network]);
        var container = Assert.Single(await Containers());
        Assert.Equal(fresh, container.Id);
        Assert.Equal(ip, container.Addresses[DockerRig.Network]);
        Assert.Equal(ip6, container.Addresses6[DockerRig.Network]); // keep-ip keeps both families
        Assert.Equal(ip6, record.Networks6?[DockerRig.Network]);
    }

    [Fact]
    public async Task On_full_nodes_a_replace_stops_unless_max_unavailable_lets_old_ones_go_first()
    {
        StartAgents();
        // Two instances of 128 MiB fill each 256 MiB node: no room anywhere for a new one beside an old one.
        var first = await Deployer().DeployAsync(Spec("h1", memory: 128 * MiB, bind: false, cpu: 0.2) with { Nodes = [], Count = 4 });
        Assert.True(first.Ok, first.Error ?? string.Join("; ", first.Instances.Select(i => i.Error)));
        var olds = first.Instances.Select(i => i.WorkloadId!).Order(StringComparer.Ordinal).ToList();
        var next = Spec("h1", memory: 128 * MiB, bind: false, cpu: 0.2, tag: "v2") with { Nodes = [] };

        var stopped = await Deployer().ReplaceAsync(next,
            new ReplaceOptions { HealthTimeout = TimeSpan.FromSeconds(30), StopTimeout = TimeSpan.FromSeconds(1) });
        Assert.False(stopped.Ok);
        Assert.Contains("replace stopped", stopped.Error, StringComparison.Ordinal);
        Assert.Equal(olds, (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value.Id).Order(StringComparer.Ordinal));
        Assert.Equal(olds, (await Containers()).Select(c => c.Id).Order(StringComparer.Ordinal));

        var replaced = await Deployer().ReplaceAsync(next, new ReplaceOptions
        {
            MaxUnavailable = 1, HealthTimeout = TimeSpan.FromSeconds(30), StopTimeout = TimeSpan.FromSeconds(1),
        });
        Assert.True(replaced.Ok, replaced.Error ?? string.Join("; ", replaced.Instances.Select(i => i.Error)));
        var news = replaced.Instances.Select(i => i.WorkloadId!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(4, news.Count);
        Assert.Empty(news.Intersect(olds));
        var records = (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).ToList();
        Assert.Equal(news, records.Select(w => w.Id).Order(StringComparer.Ordinal));
        Assert.All(records, w => Assert.Equal(["v2"], w.Tags));
        Assert.Equal(news, (await Containers()).Select(c => c.Id).Order(StringComparer.Ordinal));
    }

    public async Task DisposeAsync()
    {
        await _stopAgents.CancelAsync();
        foreach (var (agent, run) in _agents)
        {
            await run;
            await agent.DisposeAsync();
        }
        if (_watcher is not null) await _watcher.DisposeAsync();
        await _rig.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
        _conn.Dispose();
    }

    public void Dispose()
    {
        _stopAgents.Dispose();
        _logs.Dispose();
    }
}
