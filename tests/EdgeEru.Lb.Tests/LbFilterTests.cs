using System.Net;
using System.Text.Json;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>Filters, terminals and backend options through real HTTP requests to the real backends.</summary>
public sealed partial class LbProxyTests
{
    private static LbSelector Hello(params string[] tags) => new() { App = "hello", Entrypoint = "web", Port = "http", Tags = tags };

    private async Task<HttpResponseMessage> Send(
        HttpMethod method, string path, string host, Action<HttpRequestMessage>? edit = null, HttpClient? client = null)
    {
        using var req = new HttpRequestMessage(method, path);
        req.Headers.Host = host;
        edit?.Invoke(req);
        return await (client ?? _http).SendAsync(req);
    }

    private async Task<string> Text(HttpMethod method, string path, string host, Action<HttpRequestMessage>? edit = null)
    {
        using var resp = await Send(method, path, host, edit);
        return $"{(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}";
    }

    [Fact]
    public async Task Method_query_ua_ip_regex_rewrite_redirect_and_backend_options_work_through_real_requests()
    {
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "filters.test",
            Init = "m",
            TrustedProxies = ["127.0.0.0/8"], // the test client is a trusted proxy: its X-Forwarded-For counts
            Nodes = new()
            {
                ["m"] = new LbNode { Type = "method", Values = ["DELETE"], Succ = "no-deletes", Fail = "q" },
                ["no-deletes"] = new LbNode { Type = "respond", Status = 405, Body = "no deletes" },
                ["q"] = new LbNode { Type = "query", Name = "debug", Match = "exact", Value = "1", Succ = "debug", Fail = "ua" },
                ["debug"] = new LbNode { Type = "respond", Status = 200, Body = "debug", ContentType = "text/plain" },
                ["ua"] = new LbNode { Type = "ua", Value = "bot|crawler", Succ = "bots", Fail = "ip" },
                ["bots"] = new LbNode { Type = "respond", Status = 403, Body = "no bots" },
                ["ip"] = new LbNode { Type = "ip", Cidrs = ["203.0.113.0/24"], Succ = "office", Fail = "rx" },
                ["office"] = new LbNode { Type = "respond", Status = 200, Body = "office" },
                ["rx"] = new LbNode
                {
                    Type = "path", Match = "regex", Value = "^/v(?<n>[0-9]+)/(.*)$", Rewrite = "/version/${n}/$1",
                    Succ = "api", Fail = "away",
                },
                ["api"] = new LbNode
                {
                    Type = "backend",
                    Select = Hello("v2"),
                    Options = new LbBackendOptions
                    {
                        SetRequestHeaders = new() { ["X-Added"] = "yes" },
                        RemoveRequestHeaders = ["X-Secret"],
                        SetResponseHeaders = new() { ["X-Served-By"] = "eru" },
                        MaxBodyBytes = 1000,
                    },
                },
                ["away"] = new LbNode { Type = "redirect", Status = 308, Location = "https://{host}{path}{query}" },
            },
        });
        await Until(async () => (await Text(HttpMethod.Delete, "/x", "filters.test")) == "405 no deletes", "filters.test routes");

        Assert.Equal("200 debug", await Text(HttpMethod.Get, "/v1/a?debug=1", "filters.test"));
        Assert.Equal("403 no bots",
            await Text(HttpMethod.Get, "/v1/a", "filters.test", r => r.Headers.UserAgent.ParseAdd("Googlebot/2.1")));
        Assert.Equal("200 office",
            await Text(HttpMethod.Get, "/v1/a", "filters.test", r => r.Headers.Add("X-Forwarded-For", "203.0.113.7")));

        // Regex rewrite to the v2 backend, with header edits both ways.
        using (var resp = await Send(HttpMethod.Get, "/v7/items", "filters.test", r => r.Headers.Add("X-Secret", "s3cr3t")))
        {
            Assert.Equal("v2 /version/7/items xff=127.0.0.1 added=yes", await resp.Content.ReadAsStringAsync());
            Assert.Equal("eru", resp.Headers.GetValues("X-Served-By").Single());
        }
        // Max body size: small bodies pass, larger ones are refused before they reach a workload.
        Assert.StartsWith("200 v2",
            await Text(HttpMethod.Post, "/v1/up", "filters.test", r => r.Content = new ByteArrayContent(new byte[500])),
            StringComparison.Ordinal);
        Assert.StartsWith("413",
            await Text(HttpMethod.Post, "/v1/up", "filters.test", r => r.Content = new ByteArrayContent(new byte[5000])),
            StringComparison.Ordinal);

        // Redirect template.
        using var noFollow = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = _http.BaseAddress };
        using var redirect = await Send(HttpMethod.Get, "/shop?x=1", "filters.test", client: noFollow);
        Assert.Equal(HttpStatusCode.PermanentRedirect, redirect.StatusCode);
        Assert.Equal("https://filters.test/shop?x=1", redirect.Headers.Location!.ToString());
    }

    [Fact]
    public async Task Weighted_groups_converge_to_their_shares()
    {
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "weights.test",
            Init = "b",
            Nodes = new()
            {
                ["b"] = new LbNode
                {
                    Type = "backend",
                    Select = Hello(),
                    Groups = [new LbGroup { Weight = 80, Tags = ["v1"] }, new LbGroup { Weight = 20, Tags = ["v2"] }],
                },
            },
        });
        await Until(async () => (await Get("/", host: "weights.test")).StartsWith('v'), "weights.test routes");
        var v2 = 0;
        const int n = 600;
        for (var i = 0; i < n; i++)
            if ((await Get("/", host: "weights.test")).StartsWith("v2", StringComparison.Ordinal)) v2++;
        Assert.InRange(v2, n * 12 / 100, n * 28 / 100); // 20% expected; binomial sd ~1.6%
    }

    [Fact]
    public async Task Connect_failures_are_retried_on_another_workload_and_the_dead_one_is_ejected()
    {
        // A workload the agent still reports healthy, but nothing listens at its address.
        await _store.PutAsync(
            Kinds.Workloads, Samples.Workload("deadbeef", app: "hello", tags: ["dead"], ip: "127.0.0.9", httpPort: _backendPort));
        await _store.PutAsync(Kinds.WorkloadStatus, Samples.Status("deadbeef", ip: "127.0.0.9"), _lease!.Id);
        await Live("v2cccc", "127.0.0.4", "dead"); // the v2 backend joins the "dead" tag group as the live one
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "retry.test",
            Init = "b",
            Nodes = new()
            {
                ["b"] = new LbNode
                {
                    Type = "backend", Select = Hello("dead"), Options = new LbBackendOptions { Policy = "round_robin", Retries = 1 },
                },
            },
        });
        await Until(async () => (await Get("/", host: "retry.test")).StartsWith("v2", StringComparison.Ordinal), "retry.test routes");
        for (var i = 0; i < 20; i++)
            Assert.StartsWith("v2", await Get("/", host: "retry.test"), StringComparison.Ordinal); // never the dead one's error

        var (_, stats) = await Admin(HttpMethod.Get, "/api/stats");
        using var doc = JsonDocument.Parse(stats);
        var dead = doc.RootElement.GetProperty("domains").EnumerateArray().Single(d => d.GetProperty("domain").GetString() == "retry.test")
            .GetProperty("backends")[0].GetProperty("destinations").EnumerateArray()
            .Single(d => d.GetProperty("workload").GetString() == "deadbeef");
        Assert.True(dead.GetProperty("ejected").GetBoolean());
        await Live("v2cccc", "127.0.0.4", "v2");
    }
}
