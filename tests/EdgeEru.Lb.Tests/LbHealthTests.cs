using System.Net;
using EdgeEru.Registry;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>Active health checks and draining, against two more real backends (127.0.0.7 and .8).</summary>
public sealed partial class LbProxyTests
{
    private sealed class ProbeBackend
    {
        public volatile bool Sick;
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource SlowStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private async Task<Dictionary<string, ProbeBackend>> StartProbeBackends()
    {
        var states = new Dictionary<string, ProbeBackend>();
        foreach (var (name, ip) in new[] { ("pa", "127.0.0.7"), ("pb", "127.0.0.8") })
        {
            var state = states[name] = new ProbeBackend();
            var b = WebApplication.CreateSlimBuilder(Backend.Args);
            b.WebHost.UseUrls($"http://{ip}:{_backendPort}");
            b.Logging.ClearProviders();
            var app = b.Build();
            app.Run(async ctx =>
            {
                if (ctx.Request.Path == "/healthz") ctx.Response.StatusCode = state.Sick ? 503 : 200;
                else if (ctx.Request.Path == "/slow")
                {
                    state.SlowStarted.TrySetResult();
                    await state.Release.Task;
                    await ctx.Response.WriteAsync($"{name} slow done");
                }
                else await ctx.Response.WriteAsync(name);
            });
            await app.StartAsync();
            _backends.Add(app);
            await _store.PutAsync(
                Kinds.Workloads, Samples.Workload(name + "00", app: "probe", tags: ["v1"], ip: ip, httpPort: _backendPort));
            await _store.PutAsync(Kinds.WorkloadStatus, Samples.Status(name + "00", ip: ip), _lease!.Id);
        }
        // Written as an operator would, through the admin API, leaving most options at their defaults.
        var (status, body) = await Admin(HttpMethod.Put, "/api/domains/probe.test", """
            {"v":1,"name":"probe.test","init":"b","nodes":{"b":{"type":"backend",
              "select":{"app":"probe","entrypoint":"web","port":"http"},
              "options":{"policy":"round_robin","health_check":{"path":"/healthz","interval_ms":150,"timeout_ms":100}}}}}
            """);
        Assert.True(status == 200, body);
        await Until(async () => (await Spread("probe.test", 10)).Count == 2, "both probe backends serve");
        return states;
    }

    private async Task<HashSet<string>> Spread(string host, int n)
    {
        var seen = new HashSet<string>();
        for (var i = 0; i < n; i++) seen.Add(await Get("/", host: host));
        return seen;
    }

    [Fact]
    public async Task A_failing_active_check_takes_a_destination_out_until_it_passes()
    {
        var backends = await StartProbeBackends();
        backends["pa"].Sick = true;
        await Until(async () => (await Spread("probe.test", 10)).SetEquals(["pb"]), "pa out after failing its check");
        var (_, stats) = await Admin(HttpMethod.Get, "/api/stats");
        Assert.Contains("\"fails_check\":true", stats, StringComparison.Ordinal);
        for (var i = 0; i < 3; i++) Assert.Equal(["pb"], await Spread("probe.test", 10)); // stays out while failing

        backends["pa"].Sick = false;
        await Until(async () => (await Spread("probe.test", 10)).SetEquals(["pa", "pb"]), "pa back after passing");
    }

    [Fact]
    public async Task A_workload_that_leaves_drains_its_in_flight_requests()
    {
        var backends = await StartProbeBackends();
        // Hold a request open on whichever backend gets it.
        using var req = new HttpRequestMessage(HttpMethod.Get, "/slow");
        req.Headers.Host = "probe.test";
        var slow = _http.SendAsync(req);
        var started = await Task.WhenAny(backends.Values.Select(b => b.SlowStarted.Task));
        var (name, busy) = backends.Single(b => b.Value.SlowStarted.Task == started);
        var other = name == "pa" ? "pb" : "pa";

        // Its workload goes unhealthy (the agent says so): no new requests reach it...
        await _store.PutAsync(Kinds.WorkloadStatus,
            Samples.Status(name + "00", ip: name == "pa" ? "127.0.0.7" : "127.0.0.8", healthy: false), _lease!.Id);
        await Until(async () => (await Spread("probe.test", 10)).SetEquals([other]), "new requests avoid the leaving workload");
        Assert.False(slow.IsCompleted);

        // ...and the one in flight completes normally.
        busy.Release.SetResult();
        using var resp = await slow;
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal($"{name} slow done", await resp.Content.ReadAsStringAsync());
    }
}
