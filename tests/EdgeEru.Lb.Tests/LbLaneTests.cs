using System.Net.Sockets;
using System.Text;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// The HTTP/1.1 lane (plain GET and HEAD answered on the event loop, everything else handed to Kestrel):
/// a workload sees the same request and a client the same answer as through Kestrel; a connection moves to
/// Kestrel mid-stream with the bytes it sent; odd requests get Kestrel's answers; Kestrel's idle and
/// header timeouts hold in the lane too.
/// </summary>
public sealed class LbLaneTests(EtcdFixture etcd, ITestOutputHelper output)
    : OneBackendLbTests(etcd, output, "w1", "127.0.0.7"), IClassFixture<EtcdFixture>
{
    protected override void Map(WebApplication backend)
    {
        // The request as the workload got it: method, target, and its headers (names lower-cased, sorted).
        backend.MapMethods("/seen/{**rest}", ["GET", "HEAD"], async ctx =>
        {
            ctx.Response.Headers["X-Workload"] = "w1";
            ctx.Response.Headers.CacheControl = "no-store";
            var lines = ctx.Request.Headers.Where(h => h.Key != "Content-Length")
                .SelectMany(h => h.Value.Select(v => $"{h.Key.ToLowerInvariant()}: {v}")).Order(StringComparer.Ordinal);
            var body = Encoding.UTF8.GetBytes(
                $"{ctx.Request.Method} {ctx.Request.Path}{ctx.Request.QueryString}\n{string.Join('\n', lines)}\n");
            ctx.Response.ContentLength = body.Length;
            await ctx.Response.Body.WriteAsync(body);
        });
        backend.MapPost("/count", async ctx =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            await ctx.Response.WriteAsync($"posted {(await reader.ReadToEndAsync()).Length}");
        });
        backend.MapGet("/echo/{who}", (string who) => who);
        backend.MapGet("/slow-ok", async () =>
        {
            await Task.Delay(1000);
            return "done";
        });
    }

    /// <summary>Header edits on every backend of hello.test, so both ways apply them.</summary>
    protected override LbDomain Domain(LbDomain sample)
    {
        foreach (var backend in sample.Nodes.Where(n => n.Value.Type == "backend").ToList())
            sample.Nodes[backend.Key] = backend.Value with
            {
                Options = new LbBackendOptions
                {
                    SetRequestHeaders = new() { ["X-Edge"] = "set" },
                    RemoveRequestHeaders = ["X-Secret"],
                    SetResponseHeaders = new() { ["X-Served-By"] = "eru", ["Cache-Control"] = "public" },
                },
            };
        return sample;
    }

    protected override async Task SeedAsync(RegistryStore store) =>
        await store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "answers.test",
            Init = "path",
            Nodes = new()
            {
                ["path"] = new LbNode { Type = "path", Match = "prefix", Value = "/moved", Succ = "moved", Fail = "empty" },
                ["moved"] = new LbNode { Type = "redirect", Status = 308, Location = "https://{host}/new{path}{query}" },
                ["empty"] = new LbNode { Type = "path", Match = "exact", Value = "/teapot", Succ = "teapot", Fail = "nothing" },
                ["teapot"] = new LbNode { Type = "respond", Status = 418, ContentType = "text/plain", Body = "short and stout\n" },
                ["nothing"] = new LbNode { Type = "respond", Status = 204 },
            },
        });

    private async Task<TestLb> StartLb(params string[] extra)
    {
        var lb = await StartLbAsync(extra);
        await Eventually.True(
            async () => (await RawHttp.ExchangeAsync(lb.Port, "GET /echo/ready HTTP/1.1\r\nHost: hello.test\r\n\r\n", 1))
                .Contains("ready", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "the LB routes to the backend");
        return lb;
    }

    private const string Plain =
        "GET /seen/a/b?x=1&y=two HTTP/1.1\r\nHost: hello.test:80\r\nUser-Agent: lane-test\r\nAccept: */*\r\nX-Forwarded-For: 10.1.1.1\r\n" +
        "X-Forwarded-Proto: https\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nX-Edge: client\r\n" +
        "X-Multi: a\r\nX-Multi: b\r\nCookie: uid=7\r\n\r\n";

    [Fact]
    public async Task The_workload_sees_the_same_request_and_the_client_the_same_answer_as_through_Kestrel()
    {
        var lane = await StartLb();
        var kestrel = await StartLb("--Lb:Http1Lane", "false");
        foreach (var request in new[] { Plain, Plain.Replace("GET ", "HEAD ", StringComparison.Ordinal) })
        {
            var viaLane = Normalize(await RawHttp.ExchangeAsync(lane.Port, request, 1));
            var viaKestrel = Normalize(await RawHttp.ExchangeAsync(kestrel.Port, request, 1));
            Assert.Equal(viaKestrel, viaLane);
            Assert.Contains("x-served-by: eru", viaLane, StringComparison.Ordinal);
        }
        var seen = Normalize(await RawHttp.ExchangeAsync(lane.Port, Plain, 1));
        Assert.Contains("x-forwarded-for: 10.1.1.1, 127.0.0.1\n", seen, StringComparison.Ordinal);
        Assert.Contains("x-forwarded-proto: http\n", seen, StringComparison.Ordinal);        // the client's is replaced
        Assert.Contains("x-edge: set\n", seen, StringComparison.Ordinal);                    // the backend's edit wins
        Assert.DoesNotContain("x-secret", seen, StringComparison.Ordinal);                   // removed
        Assert.DoesNotContain("keep-alive: timeout", seen, StringComparison.Ordinal);        // hop-by-hop
        Assert.Contains("cache-control: public", seen, StringComparison.Ordinal);            // the workload's replaced
        Assert.DoesNotContain("no-store", seen, StringComparison.Ordinal);
        // Those were the lane's answers, not Kestrel's (the counter is the process's: other tests' lanes add to it too).
        Assert.True(await Metric(lane, "eru_lb_http1_lane_requests_total") >= 4);
    }

    /// <summary>Status line and headers (Date left out, names lower-cased, sorted), then the body.</summary>
    private static string Normalize(string response)
    {
        var end = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var lines = response[..end].Split("\r\n");
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => !p[0].Equals("Date", StringComparison.OrdinalIgnoreCase))
            .Select(p => $"{p[0].ToLowerInvariant()}: {p[1].Trim()}").Order(StringComparer.Ordinal);
        return $"{lines[0]}\n{string.Join('\n', headers)}\n\n{response[(end + 4)..]}";
    }

    [Theory]
    [InlineData("GET /moved/a?b=1 HTTP/1.1\r\nHost: answers.test:8080\r\n\r\n")]
    [InlineData("GET /teapot HTTP/1.1\r\nHost: answers.test\r\n\r\n")]
    [InlineData("HEAD /teapot HTTP/1.1\r\nHost: answers.test\r\n\r\n")]
    [InlineData("GET /anything HTTP/1.1\r\nHost: answers.test\r\n\r\n")]
    public async Task Redirect_and_respond_nodes_answer_as_through_Kestrel(string request)
    {
        var lane = await StartLb();
        var kestrel = await StartLb("--Lb:Http1Lane", "false");
        var alone = request[..^2] + "Connection: close\r\n\r\n";
        var viaLane = await RawHttp.ExchangeAsync(lane.Port, alone, 1, untilClose: true);
        var viaKestrel = await RawHttp.ExchangeAsync(kestrel.Port, alone, 1, untilClose: true);
        Assert.Equal(Normalize(Dechunk(viaKestrel)), Normalize(Dechunk(viaLane)));
        // With a second request behind it, the first answer's framing lets the client find the second.
        var both = await RawHttp.ExchangeAsync(
            lane.Port, request + "GET /echo/next HTTP/1.1\r\nHost: hello.test\r\nConnection: close\r\n\r\n", 2, untilClose: true);
        Assert.Contains("\r\nnext\r\n", both, StringComparison.Ordinal);
    }

    /// <summary>
    /// The first response's body without chunked framing (Kestrel chunks what the LB writes itself; the lane sends a length).
    /// </summary>
    private static string Dechunk(string response)
    {
        var end = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = response[..end];
        if (!head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase))
            return string.Join("\r\n", head.Split("\r\n").Where(l => !l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)))
                + response[end..];
        var body = new StringBuilder();
        var at = end + 4;
        while (true)
        {
            var eol = response.IndexOf("\r\n", at, StringComparison.Ordinal);
            var size = Convert.ToInt32(response[at..eol], 16);
            if (size == 0) break;
            body.Append(response, eol + 2, size);
            at = eol + 2 + size + 2;
        }
        var rest = response[(response.IndexOf("\r\n\r\n", at, StringComparison.Ordinal) + 4)..];
        head = string.Join("\r\n", head.Split("\r\n").Where(l => !l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase)));
        return head + "\r\n\r\n" + body + rest;
    }

    [Fact]
    public async Task A_request_in_flight_when_the_LB_stops_is_answered_and_its_connection_closed()
    {
        var lb = await StartLb();
        using var socket = await RawHttp.OpenAsync(lb.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET /slow-ok HTTP/1.1\r\nHost: hello.test\r\n\r\n"));
        await Task.Delay(200); // the request is with the workload
        var stopping = lb.App.StopAsync();
        var (text, _) = await ClosedWithinAsync(socket, TimeSpan.FromSeconds(10));
        await stopping;
        Assert.StartsWith("HTTP/1.1 200", text, StringComparison.Ordinal);
        Assert.Contains("Connection: close", text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\ndone\r\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_connection_moves_to_Kestrel_at_the_first_request_the_lane_leaves_to_it()
    {
        var lb = await StartLb();
        var handedBefore = await Metric(lb, "eru_lb_http1_lane_handovers_total");
        // Three requests in one packet: the lane answers the first; the POST and what follows go to Kestrel.
        var answers = await RawHttp.ExchangeAsync(lb.Port,
            "GET /echo/first HTTP/1.1\r\nHost: hello.test\r\n\r\n" +
            "POST /count HTTP/1.1\r\nHost: hello.test\r\nContent-Length: 5\r\n\r\nhello" +
            "GET /echo/third HTTP/1.1\r\nHost: hello.test\r\n\r\n", 3);
        var first = answers.IndexOf("first", StringComparison.Ordinal);
        var posted = answers.IndexOf("posted 5", StringComparison.Ordinal);
        var third = answers.IndexOf("third", StringComparison.Ordinal);
        Assert.True(first > 0 && posted > first && third > posted, answers);
        Assert.True(await Metric(lb, "eru_lb_http1_lane_handovers_total") > handedBefore);
    }

    [Theory]
    [InlineData("GET /echo/a%20b HTTP/1.1\r\nHost: hello.test\r\n\r\n", "HTTP/1.1 200")]      // escapes: Kestrel decodes
    [InlineData("GET /x/../echo/dots HTTP/1.1\r\nHost: hello.test\r\n\r\n", "HTTP/1.1 200")] // dot segments: Kestrel removes
    [InlineData("GET /echo/old HTTP/1.0\r\nHost: hello.test\r\n\r\n", "HTTP/1.1 200")]        // HTTP/1.0
    [InlineData("GET /echo/lf HTTP/1.1\nHost: hello.test\n\n", "HTTP/1.1 ")]                    // bare LF
    [InlineData("GET /echo/two HTTP/1.1\r\nHost: hello.test\r\nHost: other.test\r\n\r\n", "HTTP/1.1 400")] // two hosts
    [InlineData("GET /echo/sp HTTP/1.1\r\nHost : hello.test\r\n\r\n", "HTTP/1.1 400")]           // space before the colon
    [InlineData("GET /echo/ctl HTTP/1.1\r\nHost: hello.test\r\nX-Bad: a\u0001b\r\n\r\n", "HTTP/1.1 ")] // a control character
    public async Task Requests_the_lane_does_not_take_get_the_answer_Kestrel_gives(string request, string status)
    {
        var lane = await StartLb();
        var kestrel = await StartLb("--Lb:Http1Lane", "false");
        // Each is answered and then the connection closes (HTTP/1.0, or a refused request), or it is closed after a second.
        var viaLane = await RawHttp.ExchangeAsync(
            lane.Port, request + "GET /echo/end HTTP/1.1\r\nHost: hello.test\r\nConnection: close\r\n\r\n", 1, untilClose: true);
        var viaKestrel = await RawHttp.ExchangeAsync(
            kestrel.Port, request + "GET /echo/end HTTP/1.1\r\nHost: hello.test\r\nConnection: close\r\n\r\n", 1, untilClose: true);
        Assert.StartsWith(status, viaLane, StringComparison.Ordinal);
        Assert.Equal(Normalize(viaKestrel), Normalize(viaLane));
    }

    [Fact]
    public async Task Unknown_hosts_respond_nodes_and_Connection_close_are_answered_as_Kestrel_would()
    {
        var lane = await StartLb();
        var kestrel = await StartLb("--Lb:Http1Lane", "false");
        const string unknown = "GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n";
        var viaLane = await RawHttp.ExchangeAsync(lane.Port, unknown, 1, untilClose: true);
        var viaKestrel = await RawHttp.ExchangeAsync(kestrel.Port, unknown, 1, untilClose: true);
        Assert.StartsWith("HTTP/1.1 404 Not Found\r\n", viaLane, StringComparison.Ordinal);
        Assert.Contains("Connection: close", viaLane, StringComparison.OrdinalIgnoreCase);
        Assert.EndsWith("no EdgeEru domain nowhere.test\n", viaLane, StringComparison.Ordinal);
        Assert.Contains("no EdgeEru domain nowhere.test\n", viaKestrel, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Idle_connections_and_slow_heads_are_closed_at_Kestrels_timeouts()
    {
        var lb = await StartLb("--Kestrel:Limits:KeepAliveTimeout", "00:00:02", "--Kestrel:Limits:RequestHeadersTimeout", "00:00:02");
        // Idle after an answer.
        using var idle = await RawHttp.OpenAsync(lb.Port);
        await idle.SendAsync(Encoding.ASCII.GetBytes("GET /echo/once HTTP/1.1\r\nHost: hello.test\r\n\r\n"));
        var closedIn = await ClosedWithinAsync(idle, TimeSpan.FromSeconds(10));
        Assert.Contains("once", closedIn.Text, StringComparison.Ordinal);
        // Half a head, then nothing.
        using var slow = await RawHttp.OpenAsync(lb.Port);
        await slow.SendAsync(Encoding.ASCII.GetBytes("GET /echo/slow HTTP/1.1\r\nHo"));
        var slowClosed = await ClosedWithinAsync(slow, TimeSpan.FromSeconds(10));
        Assert.DoesNotContain("slow", slowClosed.Text, StringComparison.Ordinal);
    }

    /// <summary>Reads until the LB closes the connection; fails if it has not within <paramref name="limit"/>.</summary>
    private static async Task<(string Text, TimeSpan After)> ClosedWithinAsync(Socket socket, TimeSpan limit)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var text = await RawHttp.ReadAsync(socket, until: null, limit);
        return (text, started.Elapsed);
    }

    private static async Task<double> Metric(TestLb lb, string name)
    {
        using var ops = new HttpClient();
        var text = await ops.GetStringAsync($"http://127.0.0.1:{lb.OpsPort}/metrics");
        return text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)).SingleOrDefault();
    }
}
