using System.Diagnostics;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// A backend whose select says <c>datacenters: [local, any]</c> (docs/multi-dc.md), on an eru-lb of dc1 that follows dc2's
/// registry (a second real etcd), read-only: requests stay in dc1 while it can serve, go to dc2's instance when dc1's
/// dies (with no failed request: the retry takes the next datacenter), come back when dc1 has one again, and a frozen
/// dc2 etcd changes nothing for dc1.
/// </summary>
public sealed class LbDatacentersTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private readonly List<WebApplication> _backends = [];
    private readonly int _port = Ports.FreeTcp();
    private readonly string _prefix = EtcdFixture.NewPrefix();
    private EtcdServer _dc2Etcd = null!;
    private EtcdConnection _dc1Conn = null!, _dc2Conn = null!;
    private RegistryStore _dc1 = null!, _dc2 = null!;
    private TestLb _lb = null!;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public async Task InitializeAsync()
    {
        _dc2Etcd = await EtcdServer.StartAsync();
        _dc1Conn = new EtcdConnection(etcd.Options(_prefix));
        _dc2Conn = new EtcdConnection(new RegistryOptions { Endpoints = _dc2Etcd.ClientUrl, Prefix = "/dc2" });
        (_dc1, _dc2) = (new RegistryStore(_dc1Conn), new RegistryStore(_dc2Conn));
        await _dc1.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc1" });
        await _dc2.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc2" });
        await _dc1.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "shop.test", Init = "web",
            Nodes = new()
            {
                ["web"] = new LbNode
                {
                    Type = "backend", Options = new LbBackendOptions { Retries = 2, TimeoutMs = 2000 },
                    Select = new LbSelector { App = "shop", Entrypoint = "web", Port = "http", Datacenters = ["local", "any"] },
                },
            },
        });
        _lb = await TestLb.StartAsync(etcd.Url, _prefix, output, extra:
        [
            "--Registry:Datacenters:0:Name", "dc2", "--Registry:Datacenters:0:Endpoints", _dc2Etcd.ClientUrl,
            "--Registry:Datacenters:0:Prefix", "/dc2",
        ]);
    }

    public async Task DisposeAsync()
    {
        await _lb.DisposeAsync();
        foreach (var b in _backends) await b.DisposeAsync();
        await _dc2Etcd.DisposeAsync();
    }

    public void Dispose()
    {
        _dc1Conn?.Dispose();
        _dc2Conn?.Dispose();
    }

    /// <summary>A workload answering its name on <paramref name="ip"/>, live in <paramref name="store"/>'s datacenter.</summary>
    private async Task<(WebApplication App, RegistryLease Lease)> InstanceAsync(RegistryStore store, string id, string ip)
    {
        var b = WebApplication.CreateSlimBuilder(Backend.Args);
        b.WebHost.UseUrls($"http://{ip}:{_port}");
        b.Logging.ClearProviders();
        var app = b.Build();
        app.Run(ctx => ctx.Response.WriteAsync(id));
        await app.StartAsync();
        _backends.Add(app);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload(id, ip: ip, httpPort: _port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, ip: ip), lease.Id);
        return (app, lease);
    }

    private async Task<string> GetAsync()
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, new Uri(_lb.Url, "/"));
        req.Headers.Host = "shop.test";
        using var resp = await Http.SendAsync(req);
        var body = await resp.Content.ReadAsStringAsync();
        return resp.IsSuccessStatusCode ? body : $"{(int)resp.StatusCode} {body}";
    }

    private async Task<string> ExplainAsync()
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{_lb.AdminPort}/api/explain")
        {
            Content = new StringContent("""{"host":"shop.test"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "t");
        using var resp = await Http.SendAsync(req);
        var json = await resp.Content.ReadAsStringAsync();
        return json.Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_stay_local_fail_over_to_the_next_datacenter_and_come_back()
    {
        var (local, localLease) = await InstanceAsync(_dc1, "dc1web", "127.0.0.21");
        await InstanceAsync(_dc2, "dc2web", "127.0.0.22");
        await Eventually.True(async () => await GetAsync() == "dc1web", TimeSpan.FromSeconds(15), "dc1's instance serves");
        await Eventually.True(async () => (await ExplainAsync()).Contains("\"datacenter\":\"dc2\",\"live\":[{\"workload\":\"dc2web\"",
            StringComparison.Ordinal), TimeSpan.FromSeconds(15), "eru-lb knows dc2's instance");
        for (var i = 0; i < 20; i++) Assert.Equal("dc1web", await GetAsync());

        // dc1's only instance dies before its registry knows: the retry goes to dc2, no request fails.
        var failed = 0;
        var answeredBy = new HashSet<string>();
        await local.StopAsync();
        var died = Stopwatch.StartNew();
        for (var i = 0; i < 50; i++)
        {
            var body = await GetAsync();
            if (body.Contains("dc", StringComparison.Ordinal) && !body.StartsWith('5')) answeredBy.Add(body);
            else failed++;
        }
        output.WriteLine($"after dc1's instance died: 50 requests in {died.ElapsedMilliseconds} ms, answered by "
            + $"{string.Join(", ", answeredBy)}, {failed} failed");
        Assert.Equal(0, failed);
        Assert.Equal(["dc2web"], answeredBy);

        // Its agent's lease goes too: dc1 has nothing live, dc2 serves. dc2's etcd frozen: the last dc2 snapshot serves on.
        await localLease.DisposeAsync();
        Posix.Freeze(_dc2Etcd.ProcessId!.Value);
        try
        {
            await Task.Delay(500);
            for (var i = 0; i < 10; i++) Assert.Equal("dc2web", await GetAsync());
            // dc1 has an instance again: requests come back to it, though dc2's registry is away.
            await InstanceAsync(_dc1, "dc1new", "127.0.0.23");
            await Eventually.True(async () => await GetAsync() == "dc1new", TimeSpan.FromSeconds(15), "dc1's new instance serves");
        }
        finally
        {
            Posix.Resume(_dc2Etcd.ProcessId!.Value);
        }
    }

    [Fact]
    public void A_selector_that_lists_datacenters_wrongly_is_refused_with_the_reason()
    {
        static IReadOnlyList<string> Problems(string[] datacenters, bool onFallback = false) => new LbDomain
        {
            Name = "x.test", Init = "b",
            Nodes = new()
            {
                ["b"] = new LbNode
                {
                    Type = "backend",
                    Select = new LbSelector { App = "a", Entrypoint = "web", Port = "http", Datacenters = onFallback ? null : datacenters },
                    Fallback = onFallback ? new LbSelector { Tags = ["v1"], Datacenters = datacenters } : null,
                },
            },
        }.Validate();
        Assert.Empty(Problems(["local", "any"]));
        Assert.Empty(Problems(["dc2", "local"]));
        Assert.Contains(Problems(["local", "local"]), p => p.Contains("local is listed twice", StringComparison.Ordinal));
        Assert.Contains(Problems(["Dc_2"]),
            p => p.Contains("\"Dc_2\" must be local, any or a datacenter's name", StringComparison.Ordinal));
        Assert.Contains(Problems([]), p => p.Contains("datacenters is empty", StringComparison.Ordinal));
        Assert.Contains(Problems(["any"], onFallback: true), p => p.Contains("not its fallback", StringComparison.Ordinal));
    }
}
