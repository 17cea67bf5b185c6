using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// Tests of eru-lb instances in front of one in-process web backend on <paramref name="backendIp"/>,
/// registered as live workload <paramref name="workloadId"/> of app hello (tag v1) with domain hello.test
/// (the sample canary graph) in a registry prefix of the test class's own.
/// </summary>
public abstract class OneBackendLbTests(EtcdFixture etcd, ITestOutputHelper output, string workloadId, string backendIp)
    : IAsyncLifetime, IDisposable
{
    private readonly List<TestLb> _lbs = [];
    private EtcdConnection? _conn;
    private RegistryLease? _lease;
    private string _prefix = "";

    protected int BackendPort { get; } = Ports.FreeTcp();
    protected string EtcdUrl => etcd.Url;
    /// <summary>The test's output.</summary>
    protected ITestOutputHelper Output => output;
    /// <summary>The class's registry prefix.</summary>
    protected string Prefix => _prefix;
    protected WebApplication Backend { get; private set; } = null!;

    /// <summary>The backend's endpoints.</summary>
    protected abstract void Map(WebApplication backend);

    /// <summary>hello.test's graph (the sample canary graph unless a test class edits it).</summary>
    protected virtual LbDomain Domain(LbDomain sample) => sample;

    /// <summary>More registry records a test class needs (other domains).</summary>
    protected virtual Task SeedAsync(RegistryStore store) => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        var b = WebApplication.CreateSlimBuilder(Tests.Backend.Args);
        b.WebHost.UseUrls($"http://{backendIp}:{BackendPort}");
        b.Logging.ClearProviders();
        Backend = b.Build();
        Map(Backend);
        await Backend.StartAsync();

        _prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(_prefix));
        var store = new RegistryStore(_conn);
        _lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), _lease.Id);
        await store.PutAsync(
            Kinds.Workloads, Samples.Workload(workloadId, app: "hello", tags: ["v1"], ip: backendIp, httpPort: BackendPort));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(workloadId, ip: backendIp), _lease.Id);
        await store.PutAsync(Kinds.LbDomains, Domain(Samples.LbDomain("hello.test")));
        await SeedAsync(store);
    }

    /// <summary>An eru-lb on this class's registry prefix with <paramref name="extra"/> flags, stopped with the class.</summary>
    private protected async Task<TestLb> StartLbAsync(params string[] extra)
    {
        var lb = await TestLb.StartAsync(etcd.Url, _prefix, output, extra: extra);
        _lbs.Add(lb);
        return lb;
    }

    public async Task DisposeAsync()
    {
        foreach (var lb in _lbs) await lb.DisposeAsync();
        if (Backend is not null) await Backend.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        GC.SuppressFinalize(this);
    }
}
