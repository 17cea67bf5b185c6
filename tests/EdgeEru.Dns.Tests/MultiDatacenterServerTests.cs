using System.Diagnostics;
using DnsClient;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Dns.Tests;

/// <summary>
/// A real eru-dns of datacenter dc1 following its own etcd and, read-only, dc2's etcd (a second real etcd): local
/// answers first, dc2's when dc1 has no live instance, back to dc1 when it has one again; dc2 frozen (a WAN partition)
/// leaves dc1 served as before and dc2's last answers kept.
/// </summary>
public sealed class MultiDatacenterServerTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private EtcdServer _dc2Etcd = null!;
    private EtcdConnection _dc2Conn = null!;
    private RegistryStore _dc2 = null!;
    private DnsTestServer _dns = null!;

    public async Task InitializeAsync()
    {
        _dc2Etcd = await EtcdServer.StartAsync();
        _dc2Conn = new EtcdConnection(new RegistryOptions { Endpoints = _dc2Etcd.ClientUrl, Prefix = "/dc2" });
        _dc2 = new RegistryStore(_dc2Conn);
        await _dc2.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc2" });
        _dns = await DnsTestServer.StartAsync(etcd, output, null,
            "--Registry:Datacenters:0:Name", "dc2", "--Registry:Datacenters:0:Endpoints", _dc2Etcd.ClientUrl,
            "--Registry:Datacenters:0:Prefix", "/dc2",
            "--Registry:Datacenters:1:Name", "dc3", "--Registry:Datacenters:1:Endpoints", _dc2Etcd.ClientUrl, // dc2's, misnamed
            "--Registry:Datacenters:1:Prefix", "/dc2");
        await _dns.Store.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc1" });
    }

    public async Task DisposeAsync()
    {
        await _dns.DisposeAsync();
        await _dc2Etcd.DisposeAsync();
    }

    public void Dispose() => _dc2Conn?.Dispose();

    private async Task<string[]> Async(string name)
    {
        var r = await _dns.Client().QueryAsync(name, QueryType.A);
        return [.. r.Answers.ARecords().Select(a => a.Address.ToString()).Order(StringComparer.Ordinal)];
    }

    private static async Task<RegistryLease> LiveAsync(RegistryStore store, params (string Id, string Ip)[] workloads)
    {
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        foreach (var (id, ip) in workloads)
        {
            await store.PutAsync(Kinds.Workloads, Samples.Workload(id, ip: ip));
            await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, ip: ip), lease.Id);
        }
        return lease;
    }

    [Fact]
    public async Task Local_first_the_other_datacenter_when_none_is_live_here_and_a_partition_keeps_both_served()
    {
        var local = await LiveAsync(_dns.Store, ("aaaa01", "198.18.1.1"), ("aaaa02", "198.18.1.2"));
        await using var remote = await LiveAsync(_dc2, ("bbbb01", "198.19.1.1"));
        await Eventually.True(async () => (await Async("web.shop.dc2.eru")).SequenceEqual(["198.19.1.1"]),
            TimeSpan.FromSeconds(15), "dc2's zone answers dc2's instance");
        Assert.Equal(["198.18.1.1", "198.18.1.2"], await Async("web.shop.eru"));
        Assert.Equal(["198.18.1.1", "198.18.1.2"], await Async("web.shop.dc1.eru"));
        Assert.Empty(await Async("web.shop.dc3.eru")); // that registry names itself dc2: not used as dc3
        var srv = await _dns.Client().QueryAsync("_http._tcp.web.shop.eru", QueryType.SRV);
        Assert.Equal([(1, "aaaa01.web.shop.eru."), (1, "aaaa02.web.shop.eru."), (101, "bbbb01.web.shop.dc2.eru.")],
            srv.Answers.SrvRecords().Select(r => ((int)r.Priority, r.Target.Value)).Order());

        // The last local instance goes (its agent's lease revoked): the main zone answers dc2's.
        await local.DisposeAsync();
        var gone = Stopwatch.StartNew();
        await Eventually.True(async () => (await Async("web.shop.eru")).SequenceEqual(["198.19.1.1"]),
            TimeSpan.FromSeconds(15), "web.shop.eru answers dc2's instance");
        output.WriteLine($"DNS answered dc2 {gone.ElapsedMilliseconds} ms after dc1's last instance went");

        // A partition: dc2's etcd frozen. dc2's last answers stay, and dc1 coming back is served at once.
        Posix.Freeze(_dc2Etcd.ProcessId!.Value);
        try
        {
            await Task.Delay(1000);
            Assert.Equal(["198.19.1.1"], await Async("web.shop.dc2.eru"));
            await using var back = await LiveAsync(_dns.Store, ("aaaa03", "198.18.1.3"));
            await Eventually.True(async () => (await Async("web.shop.eru")).SequenceEqual(["198.18.1.3"]),
                TimeSpan.FromSeconds(15), "web.shop.eru answers dc1's new instance during the partition");
            Assert.Equal(["198.19.1.1"], await Async("web.shop.dc2.eru"));
        }
        finally
        {
            Posix.Resume(_dc2Etcd.ProcessId!.Value);
        }
    }
}
