using System.Text.Json;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>Session affinity by cookie and the JSON access log, on the same running balancer.</summary>
public sealed partial class LbProxyTests
{
    private async Task<(string Body, string? SetCookie)> GetWithCookie(string host, string? cookie)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "/");
        req.Headers.Host = host;
        if (cookie is not null) req.Headers.Add("Cookie", cookie);
        using var resp = await _http.SendAsync(req);
        var setCookie = resp.Headers.TryGetValues("Set-Cookie", out var v) ? v.Single() : null;
        return (await resp.Content.ReadAsStringAsync(), setCookie);
    }

    [Fact]
    public async Task Cookie_affinity_keeps_a_client_on_one_workload_until_it_leaves()
    {
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "sticky.test",
            Init = "v1",
            Nodes = new()
            {
                ["v1"] = new LbNode
                {
                    Type = "backend",
                    Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v1"] },
                    Options = new LbBackendOptions { Affinity = "cookie", Policy = "round_robin" },
                },
            },
        });
        (string Body, string? SetCookie) first = default;
        await Until(async () => (first = await GetWithCookie("sticky.test", null)).Body.StartsWith("v1", StringComparison.Ordinal),
            "sticky.test routes");
        Assert.NotNull(first.SetCookie);
        Assert.StartsWith("eru_affinity_v1=", first.SetCookie, StringComparison.Ordinal);
        Assert.Contains("httponly", first.SetCookie, StringComparison.Ordinal);
        var cookie = first.SetCookie!.Split(';')[0];
        var workload = first.Body!.Split(' ')[0];

        // Round robin would alternate; the cookie keeps every request on the first workload, with no new cookie.
        for (var i = 0; i < 20; i++)
        {
            var (body, setCookie) = await GetWithCookie("sticky.test", cookie);
            Assert.Equal(workload, body.Split(' ')[0]);
            Assert.Null(setCookie);
        }

        // Its workload goes unhealthy: the client moves to the other one and gets a new cookie.
        var (id, ip) = workload == "v1a" ? ("v1aaaa", "127.0.0.2") : ("v1bbbb", "127.0.0.3");
        await Live(id, ip, "v1", healthy: false);
        (string Body, string? SetCookie) moved = default;
        await Until(async () => !(moved = await GetWithCookie("sticky.test", cookie)).Body.StartsWith(workload, StringComparison.Ordinal),
            "client moves off the unhealthy workload");
        Assert.StartsWith("eru_affinity_v1=", moved.SetCookie, StringComparison.Ordinal);
        Assert.NotEqual(cookie, moved.SetCookie!.Split(';')[0]);
        await Live(id, ip, "v1");
    }

    [Fact]
    public async Task Every_request_is_in_the_JSON_access_log()
    {
        // A domain that strips /api: the log shows the target as the client sent it.
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "log.test",
            Init = "api",
            Nodes = new()
            {
                ["api"] = new LbNode { Type = "path", Match = "prefix", Value = "/api", StripPrefix = true, Succ = "v2", Fail = "v2" },
                ["v2"] = new LbNode
                {
                    Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v2"] },
                },
            },
        });
        await Until(async () => (await Get("/api/logged?x=1", host: "log.test")).StartsWith("v2 /logged", StringComparison.Ordinal),
            "log.test strips /api");
        using (var req = new HttpRequestMessage(HttpMethod.Get, "/api/logged?x=1"))
        {
            req.Headers.Host = "log.test";
            req.Headers.UserAgent.ParseAdd("probe/1.0");
            using var resp = await _http.SendAsync(req);
            Assert.True(resp.IsSuccessStatusCode);
        }
        Assert.StartsWith("404", await Get("/nowhere", host: "unknown.test"), StringComparison.Ordinal);

        List<JsonElement> Entries()
        {
            using var f = new FileStream(_accessLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(f);
            return r.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        }
        await Until(
            () => Task.FromResult(File.Exists(_accessLog) && Entries().Any(e => e.GetProperty("host").GetString() == "unknown.test")),
            "both requests logged");
        var entries = Entries();
        var logged = entries.Last(e => e.GetProperty("path").GetString() == "/api/logged?x=1");
        Assert.Equal("GET", logged.GetProperty("method").GetString());
        Assert.Equal(200, logged.GetProperty("status").GetInt32());
        Assert.Equal("log.test", logged.GetProperty("domain").GetString());
        Assert.Equal("v2", logged.GetProperty("node").GetString());
        Assert.Equal($"127.0.0.4:{_backendPort}", logged.GetProperty("upstream").GetString());
        Assert.Equal("v2cccc", logged.GetProperty("workload").GetString());
        Assert.Equal("probe/1.0", logged.GetProperty("user_agent").GetString());
        Assert.Equal("127.0.0.1", logged.GetProperty("client").GetString());
        Assert.True(logged.GetProperty("duration_ms").GetDouble() >= 0);
        var unknown = entries.Single(e => e.GetProperty("host").GetString() == "unknown.test");
        Assert.Equal(404, unknown.GetProperty("status").GetInt32());
        Assert.False(unknown.TryGetProperty("domain", out _));
    }
}

public sealed partial class LbProxyTests
{
    [Fact]
    public async Task Metrics_count_requests_per_domain_node_and_backend_workload()
    {
        for (var i = 0; i < 4; i++) await Get("/", canary: "1");
        using var ops = new HttpClient();
        var metrics = await ops.GetStringAsync($"http://127.0.0.1:{_opsPort}/metrics");
        double Value(string series)
        {
            var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
            Assert.True(line is not null, $"no series {series} in /metrics");
            return double.Parse(line!.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.True(Value("eru_lb_node_hits_total{domain=\"hello.test\",node=\"canary-header\"}") >= 4);
        Assert.True(Value("eru_lb_requests_total{domain=\"hello.test\",node=\"v2\",code=\"2xx\"}") >= 4);
        Assert.True(Value(
            $"eru_lb_backend_requests_total{{domain=\"hello.test\",node=\"v2\",workload=\"v2cccc\"," +
            $"address=\"127.0.0.4:{_backendPort}\"}}") >= 4);
        Assert.Equal(0, Value(
            $"eru_lb_backend_out{{domain=\"hello.test\",node=\"v1\",workload=\"v1aaaa\",address=\"127.0.0.2:{_backendPort}\"}}"));
    }
}
