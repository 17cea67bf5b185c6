using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>The HTTP/1.1 short way behind Kestrel (the lane off).</summary>
public sealed class LbShortWayTests(EtcdFixture etcd, ITestOutputHelper output)
    : ScriptedWorkloadTests(etcd, output, ["--Lb:Http1Lane", "false"]), IClassFixture<EtcdFixture>;

/// <summary>The HTTP/1.1 lane (on by default).</summary>
public sealed class LbLaneWorkloadTests(EtcdFixture etcd, ITestOutputHelper output)
    : ScriptedWorkloadTests(etcd, output, []), IClassFixture<EtcdFixture>;

/// <summary>
/// The two ways a GET or HEAD reaches an HTTP/1.1 workload on the epoll transport without YARP (the lane,
/// and Kestrel's short way) against a workload that answers from a script, byte for byte: chunked bodies,
/// interim responses, bodies ending at close, a head in pieces, malformed heads, bytes beyond a response,
/// kept-alive connections the workload closes, and a workload that never answers.
/// </summary>
public abstract class ScriptedWorkloadTests(EtcdFixture etcd, ITestOutputHelper output, string[] lbFlags) : IAsyncLifetime, IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Parse("127.0.0.6"), 0);
    private readonly CancellationTokenSource _stop = new();
    private int _connections;
    private TestLb? _lb;
    private EtcdConnection? _conn;
    private RegistryLease? _lease;
    private HttpClient _http = null!;

    /// <summary>What the scripted workload sends for a path (null: nothing, ever).</summary>
    private static string? Script(string path) => path switch
    {
        "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n" +
            "5;ext=1\r\nhello\r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        "/interim" => "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "/until-close" => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close",
        "/bad" => "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        "/short" => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
        "/extra" => "HTTP/1.1 204 No Content\r\n\r\nnot part of any response",
        "/split" => "HTTP/1.|1 200 OK\r\nContent-|Length: 2\r\n\r|\nok", // sent in pieces, at the |
        "/hang" => null,
        _ => $"HTTP/1.1 200 OK\r\nContent-Length: {path.Length}\r\nX-Path: yes\r\n\r\n{path}",
    };

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptSocketAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            Interlocked.Increment(ref _connections);
            _ = Task.Run(async () =>
            {
                using var socket = s;
                var pending = new StringBuilder();
                var buffer = new byte[8192];
                try
                {
                    while (true)
                    {
                        var head = pending.ToString();
                        var end = head.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                        if (end < 0)
                        {
                            var n = await socket.ReceiveAsync(buffer, _stop.Token);
                            if (n == 0) return;
                            pending.Append(Encoding.Latin1.GetString(buffer, 0, n));
                            continue;
                        }
                        pending.Remove(0, end + 4);
                        var requestLine = head[..head.IndexOf("\r\n", StringComparison.Ordinal)].Split(' ');
                        var (method, path) = (requestLine[0], requestLine[1]);
                        var reply = Script(path);
                        if (reply is null)
                        {
                            await Task.Delay(Timeout.Infinite, _stop.Token);
                            return;
                        }
                        if (method == "HEAD") reply = reply[..(reply.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)];
                        foreach (var piece in reply.Split('|'))
                        {
                            await socket.SendAsync(Encoding.Latin1.GetBytes(piece), _stop.Token);
                            if (path == "/split") await Task.Delay(30, _stop.Token);
                        }
                        // Ends its connection after these (as a workload's keep-alive timeout would, a little later).
                        if (path is "/until-close" or "/short" or "/bad" or "/extra") return;
                        if (path.StartsWith("/then-close", StringComparison.Ordinal))
                        {
                            await Task.Delay(200, _stop.Token);
                            return;
                        }
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException) { }
            });
        }
    }

    public async Task InitializeAsync()
    {
        _listener.Start();
        _ = ServeAsync();
        var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        var store = new RegistryStore(_conn);
        _lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), _lease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload("script1", app: "hello", tags: ["v1"], ip: "127.0.0.6", httpPort: port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("script1", ip: "127.0.0.6"), _lease.Id);
        await store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "script.test",
            Init = "app",
            Nodes = new()
            {
                ["app"] = new LbNode
                {
                    Type = "backend",
                    Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v1"] },
                    Options = new LbBackendOptions { TimeoutMs = 1500, Retries = 0 },
                },
            },
        });
        _lb = await TestLb.StartAsync(etcd.Url, prefix, output, extra: ["--Lb:Transport", "epoll", .. lbFlags]);
        _http = new HttpClient { BaseAddress = _lb.Url, DefaultRequestHeaders = { Host = "script.test" } };
        await Eventually.True(async () =>
        {
            try { return (await _http.GetAsync("/ready")).StatusCode == HttpStatusCode.OK; }
            catch (HttpRequestException) { return false; }
        }, TimeSpan.FromSeconds(15), "the LB routes to the scripted workload");
    }

    [Fact]
    public async Task A_chunked_body_arrives_decoded_without_its_framing_or_trailers()
    {
        using var resp = await _http.GetAsync("/chunked");
        Assert.Equal("helloworld", await resp.Content.ReadAsStringAsync());
        Assert.Equal("chunked", resp.Headers.GetValues("X-Kind").Single());
    }

    // The fast path passes the 103 on, Kestrel's way drops it; either way HttpClient hands over only the final answer.
    [Fact]
    public async Task An_interim_response_does_not_take_the_final_ones_place()
    {
        using var resp = await _http.GetAsync("/interim");
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("ok", await resp.Content.ReadAsStringAsync());
        Assert.False(resp.Headers.Contains("Link"));
    }

    [Fact]
    public async Task A_body_that_ends_when_the_workload_closes_is_passed_on_whole()
    {
        using var resp = await _http.GetAsync("/until-close");
        Assert.Equal("until-close", await resp.Content.ReadAsStringAsync());
        Assert.Equal("/next", await _http.GetStringAsync("/next"));
    }

    [Fact]
    public async Task A_malformed_head_is_a_502_and_a_body_cut_short_breaks_the_client_connection()
    {
        Assert.Equal(HttpStatusCode.BadGateway, (await _http.GetAsync("/bad")).StatusCode);
        // 9 of 100 promised bytes, then the workload closes: the client must not take it for a whole response
        // (a 502 while nothing was sent yet, else a broken connection).
        try
        {
            using var cut = await _http.GetAsync("/short");
            var body = await cut.Content.ReadAsByteArrayAsync();
            Assert.Equal(HttpStatusCode.BadGateway, cut.StatusCode);
        }
        catch (HttpRequestException)
        {
        }
        Assert.Equal("/after-bad", await _http.GetStringAsync("/after-bad"));
    }

    [Fact]
    public async Task A_head_that_arrives_in_pieces_is_read_whole()
    {
        Assert.Equal("ok", await _http.GetStringAsync("/split"));
    }

    [Fact]
    public async Task Bytes_beyond_a_bodyless_response_are_a_502_and_the_client_connection_goes_on()
    {
        Assert.Equal(HttpStatusCode.BadGateway, (await _http.GetAsync("/extra")).StatusCode);
        Assert.Equal("/after-extra", await _http.GetStringAsync("/after-extra"));
    }

    [Fact]
    public async Task HEAD_gets_the_declared_length_and_no_body_and_the_connection_goes_on()
    {
        using var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/some/where"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("/some/where".Length, head.Content.Headers.ContentLength);
        Assert.Equal("/and/then", await _http.GetStringAsync("/and/then"));
    }

    [Fact]
    public async Task Kept_alive_connections_are_reused_and_one_the_workload_closed_is_not()
    {
        var before = Volatile.Read(ref _connections);
        for (var i = 0; i < 20; i++) Assert.Equal($"/r{i}", await _http.GetStringAsync($"/r{i}"));
        // One connection carries them (another may be in use by a parallel test).
        Assert.InRange(Volatile.Read(ref _connections) - before, 0, 2);

        // The workload closes the connection 200 ms after answering: the next request must not fail on it.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal($"/then-close{i}", await _http.GetStringAsync($"/then-close{i}"));
            await Task.Delay(400);
        }
    }

    [Fact]
    public async Task A_workload_that_never_answers_is_a_504_after_the_backend_timeout()
    {
        var started = DateTime.UtcNow;
        using var resp = await _http.GetAsync("/hang");
        Assert.Equal(HttpStatusCode.GatewayTimeout, resp.StatusCode);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 1.4, 10);
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_lb is not null) await _lb.DisposeAsync();
        await _stop.CancelAsync();
        _listener.Stop();
        if (_lease is not null) await _lease.DisposeAsync();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
