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

/// <summary>The balancer for real: etcd, eru-lb, and backends on their own loopback addresses.</summary>
public sealed partial class LbProxyTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private readonly int _backendPort = Ports.FreeTcp();
    private readonly List<WebApplication> _backends = [];
    private TestLb? _lb;
    private EtcdConnection? _conn;
    private RegistryStore _store = null!;
    private RegistryLease? _lease;
    private HttpClient _http = null!;
    private HttpClient _admin = null!;
    private const string Token = "test-admin-token";
    private int _opsPort;
    private readonly string _accessLog = Path.Combine(Path.GetTempPath(), $"eru-lb-access-{Guid.NewGuid():N}.log");

    public async Task InitializeAsync()
    {
        // Three workloads of hello.web: two v1, one v2, each a real HTTP server on its own address.
        foreach (var (name, ip) in new[] { ("v1a", "127.0.0.2"), ("v1b", "127.0.0.3"), ("v2", "127.0.0.4") })
        {
            var b = WebApplication.CreateSlimBuilder(Backend.Args);
            b.WebHost.UseUrls($"http://{ip}:{_backendPort}");
            b.Logging.ClearProviders();
            var app = b.Build();
            // Says who answered, the path it got, and the headers the LB adds or edits.
            app.Run(ctx => ctx.Response.WriteAsync($"{name} {ctx.Request.Path} xff={ctx.Request.Headers["X-Forwarded-For"]}"
                + (ctx.Request.Headers.TryGetValue("X-Added", out var added) ? $" added={added}" : "")
                + (ctx.Request.Headers.TryGetValue("X-Secret", out var secret) ? $" secret={secret}" : "")));
            await app.StartAsync();
            _backends.Add(app);
        }
        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        _store = new RegistryStore(_conn);
        _lease = await _store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await _store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), _lease.Id);
        foreach (var (id, ip, tag) in new[] { ("v1aaaa", "127.0.0.2", "v1"), ("v1bbbb", "127.0.0.3", "v1"), ("v2cccc", "127.0.0.4", "v2") })
            await Live(id, ip, tag);
        await _store.PutAsync(Kinds.LbDomains, Samples.LbDomain("hello.test"));

        _lb = await TestLb.StartAsync(etcd.Url, prefix, output, Token, "--Lb:AccessLog", _accessLog);
        _opsPort = _lb.OpsPort;
        _http = new HttpClient { BaseAddress = _lb.Url };
        _admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_lb.AdminPort}") };
        await Until(async () => (await Get("/")).StartsWith('v'), "lb routes hello.test");
    }

    private async Task Live(string id, string ip, string tag, bool healthy = true)
    {
        await _store.PutAsync(Kinds.Workloads, Samples.Workload(id, app: "hello", tags: [tag], ip: ip, httpPort: _backendPort));
        await _store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, ip: ip, healthy: healthy), _lease!.Id);
    }

    private async Task<string> Get(string path, string host = "hello.test", string? canary = null, string? uid = "steady-user-7")
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        req.Headers.Host = host;
        if (canary is not null) req.Headers.Add("X-Canary", canary);
        if (uid is not null) req.Headers.Add("Cookie", $"uid={uid}");
        using var resp = await _http.SendAsync(req);
        var status = (int)resp.StatusCode == 200 ? "" : (int)resp.StatusCode + " ";
        return status + await resp.Content.ReadAsStringAsync();
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (HttpRequestException)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for: " + what);
            await Task.Delay(50);
        }
    }

    private async Task<Dictionary<string, int>> Spread(int n, string? canary = null, Func<int, string?>? uid = null)
    {
        var seen = new Dictionary<string, int>();
        for (var i = 0; i < n; i++)
        {
            var who = (await Get("/", canary: canary, uid: uid is null ? "steady-user-7" : uid(i))).Split(' ')[0];
            seen[who] = seen.GetValueOrDefault(who) + 1;
        }
        return seen;
    }

    [Fact]
    public async Task Requests_follow_the_graph_to_live_workloads_of_the_chosen_tags()
    {
        var plain = await Spread(60);
        Assert.Equal(["v1a", "v1b"], plain.Keys.Order()); // both v1 instances serve, v2 does not
        Assert.Equal(["v2"], (await Spread(10, canary: "1")).Keys);

        // 10% of users, sticky by cookie.
        var users = Enumerable.Range(0, 300).Select(i => $"user-{i}").ToList();
        var first = new List<string>();
        foreach (var u in users) first.Add((await Get("/", uid: u)).Split(' ')[0]);
        Assert.InRange(first.Count(w => w == "v2"), 12, 60);
        for (var i = 0; i < 40; i++)
            Assert.Equal(first[i] == "v2", (await Get("/", uid: users[i])).StartsWith("v2", StringComparison.Ordinal));

        Assert.StartsWith("404", await Get("/", host: "unknown.test"), StringComparison.Ordinal);
        Assert.Contains("xff=127.0.0.1", await Get("/"), StringComparison.Ordinal); // X-Forwarded-For added
    }

    [Fact]
    public async Task Health_changes_and_fallbacks_are_followed_live()
    {
        await Live("v1aaaa", "127.0.0.2", "v1", healthy: false);
        await Until(async () => (await Spread(20)).Keys.SequenceEqual(["v1b"]), "v1a drops out when unhealthy");

        // No live v2: the canary falls back to v1 instead of failing.
        await Live("v2cccc", "127.0.0.4", "v2", healthy: false);
        await Until(async () => (await Get("/", canary: "1")).StartsWith("v1b", StringComparison.Ordinal), "canary falls back to v1");

        // Nothing live at all for the main selection: 503, said plainly.
        await Live("v1bbbb", "127.0.0.3", "v1", healthy: false);
        await Until(async () => (await Get("/")).StartsWith("503", StringComparison.Ordinal), "503 with no live workload");

        await Live("v1aaaa", "127.0.0.2", "v1");
        await Until(async () => (await Get("/")).StartsWith("v1a", StringComparison.Ordinal), "v1a back when healthy");
    }

    [Fact]
    public async Task Graph_changes_in_etcd_take_effect_and_rewrite_paths()
    {
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "*.apps.test",
            Init = "api",
            Nodes = new()
            {
                ["api"] = new LbNode { Type = "path", Match = "prefix", Value = "/api", StripPrefix = true, Succ = "v1", Fail = "teapot" },
                ["v1"] = new LbNode
                {
                    Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v1"] },
                },
                ["teapot"] = new LbNode { Type = "respond", Status = 418, Body = "short and stout" },
            },
        });
        await Until(async () => (await Get("/api/items", host: "x.apps.test")).EndsWith("/items xff=127.0.0.1", StringComparison.Ordinal),
            "wildcard domain with strip_prefix");
        Assert.Equal("418 short and stout", await Get("/other", host: "y.apps.test"));

        // A bad graph cannot be written; the working one stays.
        Assert.Throws<RegistryValueException>(() => Kinds.LbDomains.Encode(Samples.LbDomain("hello.test") with { Init = "missing" }));
        Assert.StartsWith("v1", await Get("/"), StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        if (_lb is not null) await _lb.DisposeAsync();
        foreach (var b in _backends) await b.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
        Dispose();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        File.Delete(_accessLog);
        _http?.Dispose();
        _admin?.Dispose();
    }
}
