using System.Net;
using System.Text;
using System.Text.Json;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// The console's JSON API on a real eru-core and etcd (no Docker: records written as Core and the agents write them):
/// the same tokens, scopes and audit log as the gRPC API, 4xx naming what is wrong, watches as server-sent events.
/// </summary>
public sealed class ConsoleApiTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Bootstrap = "console-bootstrap";
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-console-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private WebApplication _core = null!;
    private GrpcChannel _channel = null!;
    private EtcdConnection _conn = null!;
    private RegistryStore _store = null!;
    private string _console = "";

    private string AuditFile => Path.Combine(_dir, "core.jsonl");
    private string SshAuditFile => Path.Combine(_dir, "ssh.jsonl");

    public async Task InitializeAsync()
    {
        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        _store = new RegistryStore(_conn);
        var api = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _console = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix, "--Core:Urls", api,
            "--Core:Token", Bootstrap, "--Core:AuditLog", AuditFile, "--Core:SshAuditLog", SshAuditFile, "--Core:ConsoleUrls", _console,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(api);
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        await _store.PutAsync(Kinds.Nodes, new Node
        {
            Name = "h1", Pod = "dev", Endpoint = new DockerEndpoint { Address = "unix:///run/none.sock" },
            Capacity = new NodeCapacity { CpuCores = 2, MemoryBytes = 1L << 30 },
        });
        await _store.PutAsync(Kinds.Workloads, Workload("hello", "a1b2c3"));
    }

    private static Workload Workload(string app, string ident) => new()
    {
        Id = ident + new string('0', 58), Name = $"{app}_web_{ident}", App = app, Entrypoint = "web", Ident = ident, Pod = "dev",
        Node = "h1", Image = "busybox:1", Tags = ["v1"], Ports = [new PublishedPort { Name = "http", Port = 80, Protocol = "tcp" }],
        CreatedAt = DateTimeOffset.UtcNow,
    };

    private async Task<(HttpStatusCode Status, string Body)> CallAsync(string method, string path, string? token, string? body = null)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), _console + "/console/api" + path);
        if (token is not null) request.Headers.Authorization = new("Bearer", token);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private Task<string> TokenAsync(string name, params string[] scopes) =>
        CoreTokens.CreateAsync(CoreTokens.Client(_channel, Bootstrap), name, scopes);

    private static string Error(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;

    [Fact]
    public async Task The_api_refuses_without_a_token_and_without_the_scope_and_audits_the_refused_action()
    {
        var reader = await TokenAsync("reader", "read");
        var shop = await TokenAsync("shop-ci", "deploy:shop");

        var anonymous = await CallAsync("GET", "/nodes", null);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.Status);
        Assert.Contains("bearer token is required", Error(anonymous.Body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync("GET", "/nodes", "eru.nobody.0000")).Status);

        var nodes = await CallAsync("GET", "/nodes", reader);
        Assert.Equal(HttpStatusCode.OK, nodes.Status);
        var node = JsonDocument.Parse(nodes.Body).RootElement.GetProperty("nodes")[0];
        Assert.Equal("h1", node.GetProperty("name").GetString());
        Assert.Equal("1073741824", node.GetProperty("capacity").GetProperty("memoryBytes").GetString());
        var me = JsonDocument.Parse((await CallAsync("GET", "/whoami", reader)).Body).RootElement;
        Assert.Equal(["read"], me.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));

        // deploy:shop may not touch hello's workload, read may not act at all: 403 naming the scope, both audited.
        var id = Workload("hello", "a1b2c3").Id;
        var wrongApp = await CallAsync("POST", "/workloads/control", shop, $$"""{"action":"stop","workloads":["{{id}}"]}""");
        Assert.Equal(HttpStatusCode.Forbidden, wrongApp.Status);
        Assert.Equal("Control needs scope deploy:hello; token shop-ci has deploy:shop", Error(wrongApp.Body));
        var readOnly = await CallAsync("POST", "/workloads/remove", reader, $$"""{"workloads":["{{id}}"]}""");
        Assert.Equal(HttpStatusCode.Forbidden, readOnly.Status);
        Assert.StartsWith("Remove needs scope deploy:APP", Error(readOnly.Body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync("GET", "/ssh/sessions", reader)).Status); // admin's
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync("GET", "/apps/hello/history", shop)).Status); // read's

        var audit = CoreTokens.AuditLines(AuditFile);
        Assert.Contains(audit, l => l is { Who: "shop-ci", Method: "Control", Outcome: "PermissionDenied" }
            && l.Apps.SequenceEqual(["hello"]));
        Assert.Contains(audit, l => l is { Who: "reader", Method: "Remove", Outcome: "PermissionDenied" });
        Assert.DoesNotContain(audit, l => l.Method is "ListNodes" or "AppHistory"); // reads are not audited
        Assert.Single((await _store.ListAsync(Kinds.Workloads)).Items); // nothing happened
    }

    [Fact]
    public async Task Bad_input_is_a_4xx_naming_what_is_wrong()
    {
        var hello = await TokenAsync("hello-ci", "deploy:hello", "read");
        async Task Refused(HttpStatusCode status, string message, string method, string path, string? body = null, string? token = null)
        {
            var (code, text) = await CallAsync(method, path, token ?? hello, body);
            Assert.True(code == status, $"{method} {path}: {code} {text}");
            Assert.Contains(message, Error(text), StringComparison.Ordinal);
        }
        await Refused(HttpStatusCode.BadRequest, "the body is not the JSON this call takes", "POST", "/apps/hello/deploy", "{nope");
        await Refused(HttpStatusCode.BadRequest, "could not be mapped", "POST", "/apps/hello/deploy", """{"colour":"red"}""");
        await Refused(HttpStatusCode.BadRequest, "count must be 1-100, got -3", "POST", "/apps/hello/deploy",
            """{"spec":"appname: hello\nentrypoints:\n  web:\n    image: x\n","count":-3,"pod":"dev"}""");
        await Refused(HttpStatusCode.BadRequest, "app \"Hello_\" must be a DNS label", "GET", "/apps/Hello_/logs");
        // The scope first (deploy:nosuch is not hello-ci's), then whether the app is there: no probing names without it.
        await Refused(HttpStatusCode.Forbidden, "Logs needs scope deploy:nosuch", "GET", "/apps/nosuch/logs");
        await Refused(HttpStatusCode.NotFound, "no app nosuch: no workload of it is recorded", "GET", "/apps/nosuch/logs",
            token: Bootstrap);
        await Refused(HttpStatusCode.NotFound, "no app nosuch", "GET", "/apps/nosuch/dns");
        await Refused(HttpStatusCode.BadRequest, "tail \"many\" must be a whole number", "GET", "/apps/hello/logs?tail=many");
        await Refused(HttpStatusCode.BadRequest, "action \"explode\" must be start, stop or restart", "POST", "/workloads/control",
            """{"action":"explode","workloads":["a1b2c3"]}""");
        await Refused(HttpStatusCode.BadRequest, "workloads: name at least one workload", "POST", "/workloads/remove",
            """{"workloads":[]}""");
        await Refused(HttpStatusCode.NotFound, "no workload ffffff", "POST", "/workloads/remove", """{"workloads":["ffffff"]}""");
        await Refused(HttpStatusCode.BadRequest, "since \"-1\" must be a registry revision", "GET", "/watch/workloads?since=-1");
        await Refused(HttpStatusCode.BadRequest, "app \"a b\" must be a DNS label", "GET", "/workloads?app=a%20b");
        await Refused(HttpStatusCode.BadRequest, "entrypoint \"W\" must be a DNS label", "GET", "/watch/workloads?entrypoint=W");
        await Refused(HttpStatusCode.NotFound, "no console endpoint GET /console/api/nope", "GET", "/nope");
    }

    [Fact]
    public async Task Views_show_dns_names_lb_domains_history_and_ssh_sessions()
    {
        await _store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "hello.test", Init = "v1",
            Nodes = new()
            {
                ["v1"] = new LbNode { Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http" } },
            },
        });
        await File.WriteAllLinesAsync(SshAuditFile,
        [
            """{"time":"t1","event":"session_start","user":"ops","target":"web.hello","workload":"x","app":"hello","command":"ls"}""",
            """{"time":"t2","event":"login_accepted","user":"ops"}""",
            """{"time":"t3","event":"session_start","user":"ops","app":"shop","command":"ls"}""",
        ]);
        var reader = await TokenAsync("viewer", "read");

        var dns = JsonDocument.Parse((await CallAsync("GET", "/apps/hello/dns", reader)).Body).RootElement;
        Assert.Equal(["_http._tcp.web.hello.eru", "a1b2c3.web.hello.eru", "hello.eru", "v1.web.hello.eru", "web.hello.eru"],
            dns.GetProperty("names").EnumerateArray().Select(n => n.GetProperty("name").GetString()));

        var domains = JsonDocument.Parse((await Eventually.Value(async () =>
            await CallAsync("GET", "/lb/domains?app=hello", reader) is { Body: not "[]" } r ? r.Body : null,
            TimeSpan.FromSeconds(30), "the domain in Core's snapshot"))).RootElement;
        var domain = domains.EnumerateArray().Single();
        Assert.Equal("hello.test", domain.GetProperty("domain").GetString());
        Assert.Equal("hello.web:http", domain.GetProperty("nodes")[0].GetProperty("label").GetString());
        Assert.Equal("[]", (await CallAsync("GET", "/lb/domains?app=shop", reader)).Body);

        var sessions = JsonDocument.Parse((await CallAsync("GET", "/ssh/sessions?app=hello", Bootstrap)).Body).RootElement;
        Assert.Equal(["t1"], sessions.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("time").GetString()));

        // A refused deploy is hello's history too (who tried); the history is read's.
        var hello = await TokenAsync("hello-ops", "deploy:hello");
        var deploy = await CallAsync("POST", "/apps/hello/deploy", hello,
            """{"spec":"appname: hello\nentrypoints:\n  web:\n    image: edgeeru/busybox:test\n","count":1,"pod":"nopod"}""");
        Assert.True(deploy.Status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError, deploy.Body);
        var history = JsonDocument.Parse((await CallAsync("GET", "/apps/hello/history", reader)).Body).RootElement;
        var entry = history.GetProperty("entries").EnumerateArray().Single();
        Assert.Equal("hello-ops", entry.GetProperty("who").GetString());
        Assert.Equal("Deploy", entry.GetProperty("method").GetString());
        Assert.NotEqual("OK", entry.GetProperty("outcome").GetString());
        Assert.Contains("nopod", entry.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_page_needs_no_token_holds_no_data_and_may_not_be_framed()
    {
        using var page = await _http.GetAsync(new Uri(_console + "/console"));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.DoesNotContain("hello", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var renderer = await _http.GetAsync(new Uri(_console + "/console/rule-graph.js"));
        Assert.Contains("export function graph", await renderer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_workload_watch_streams_a_snapshot_then_a_change_as_server_sent_events()
    {
        var reader = await TokenAsync("watcher", "read");
        using var request = new HttpRequestMessage(HttpMethod.Get, _console + "/console/api/watch/workloads?app=hello");
        request.Headers.Authorization = new("Bearer", reader);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader2 = new StreamReader(await response.Content.ReadAsStreamAsync());
        async Task<JsonElement> NextAsync()
        {
            while (await reader2.ReadLineAsync() is { } line)
                if (line.StartsWith("data: ", StringComparison.Ordinal)) return JsonDocument.Parse(line[6..]).RootElement;
            throw new EndOfStreamException("the watch ended");
        }
        async Task<JsonElement> UntilAsync(Func<JsonElement, bool> wanted)
        {
            while (true)
                if (await NextAsync() is var e && wanted(e)) return e;
        }
        await UntilAsync(e => e.TryGetProperty("reset", out _));
        var first = await UntilAsync(e => e.TryGetProperty("put", out _));
        Assert.Equal("hello_web_a1b2c3", first.GetProperty("put").GetProperty("name").GetString());
        Assert.False(first.GetProperty("put").GetProperty("live").GetBoolean());
        await UntilAsync(e => e.TryGetProperty("synced", out _));

        await _store.PutAsync(Kinds.Workloads, Workload("hello", "d4e5f6"));
        var added = await UntilAsync(e => e.TryGetProperty("put", out _)).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("hello_web_d4e5f6", added.GetProperty("put").GetProperty("name").GetString());
    }

    public async Task DisposeAsync()
    {
        await _core.DisposeAsync();
        _channel.Dispose();
        _conn.Dispose();
    }

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
