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

/// <summary>etcd killed and restarted under the balancer: routing goes on from the last snapshot, then follows again.</summary>
public sealed class LbEtcdRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Routing_continues_through_an_etcd_restart_and_follows_changes_after_it()
    {
        await using var etcd = await EtcdServer.StartAsync();
        var port = Ports.FreeTcp();
        var b = WebApplication.CreateSlimBuilder(Backend.Args);
        b.WebHost.UseUrls($"http://127.0.0.10:{port}");
        b.Logging.ClearProviders();
        await using var backend = b.Build();
        backend.Run(ctx => ctx.Response.WriteAsync("backend"));
        await backend.StartAsync();

        using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcd.ClientUrl });
        var store = new RegistryStore(conn);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(120));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload("rst00001", app: "hello", ip: "127.0.0.10", httpPort: port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("rst00001", ip: "127.0.0.10"), lease.Id);
        await store.PutAsync(Kinds.LbDomains, Graph(teapot: false));

        await using var lb = await TestLb.StartAsync(etcd.ClientUrl, prefix: null, output);
        var (lbPort, opsPort) = (lb.Port, lb.OpsPort);
        using var http = new HttpClient();
        async Task<string> Get()
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{lbPort}/");
            req.Headers.Host = "restart.test";
            using var resp = await http.SendAsync(req);
            return $"{(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}";
        }
        async Task Until(string expected, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await Get() != expected)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for: " + what);
                await Task.Delay(50);
            }
        }
        await Until("200 backend", "lb routes restart.test");

        await etcd.StopAsync(kill: true);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("200 backend", await Get()); // the last snapshot keeps serving
            await Task.Delay(100);
        }
        Assert.Contains("\"registry_in_touch\":false", await http.GetStringAsync(new Uri($"http://127.0.0.1:{opsPort}/healthz")),
            StringComparison.Ordinal);

        await etcd.StartAsync();
        await store.PutAsync(Kinds.LbDomains, Graph(teapot: true));
        await Until("418 after the restart", "a graph change after the restart is followed");
        Assert.Contains("\"registry_in_touch\":true", await http.GetStringAsync(new Uri($"http://127.0.0.1:{opsPort}/healthz")),
            StringComparison.Ordinal);
        await lease.DisposeAsync();
    }

    private static LbDomain Graph(bool teapot) => new()
    {
        Name = "restart.test",
        Init = "t",
        Nodes = new()
        {
            ["t"] = new LbNode { Type = "header", Name = "X-Never", Match = "present", Succ = "b", Fail = teapot ? "teapot" : "b" },
            ["b"] = new LbNode { Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http" } },
            ["teapot"] = new LbNode { Type = "respond", Status = 418, Body = "after the restart" },
        },
    };
}
