using System.Globalization;
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

/// <summary>The fast path (GET and HEAD on the plain port; requests with a body are handed to Kestrel).</summary>
public sealed class LbStrictFastPathTests(EtcdFixture etcd, ITestOutputHelper output)
    : StrictHttpTests(etcd, output, [], forwardsInterim: true), IClassFixture<EtcdFixture>;

/// <summary>Kestrel with direct HTTP/1.1 forwarding (the fast path off).</summary>
public sealed class LbStrictDirectForwardingTests(EtcdFixture etcd, ITestOutputHelper output)
    : StrictHttpTests(etcd, output, ["--Lb:Http1Lane", "false"], forwardsInterim: false), IClassFixture<EtcdFixture>;

/// <summary>Kestrel with YARP for every request (the sockets transport has neither of the other ways).</summary>
public sealed class LbStrictYarpTests(EtcdFixture etcd, ITestOutputHelper output)
    : StrictHttpTests(etcd, output, ["--Lb:Transport", "sockets"], forwardsInterim: false), IClassFixture<EtcdFixture>;

/// <summary>
/// What eru-lb lets through, on each of its three ways, against a workload that answers from a script byte for
/// byte: a request Content-Length that is not only digits is Kestrel's 400 with the connection closed, before
/// anything reaches a workload; a response Content-Length that is not only digits is a 502; a workload's
/// interim answers (103 Early Hints, 100 Continue) reach the client before the final one where the way can
/// send them (the fast path writes bytes; Kestrel's response API cannot send a 1xx, see docs/lb.md).
/// </summary>
public abstract class StrictHttpTests(EtcdFixture etcd, ITestOutputHelper output, string[] lbFlags, bool forwardsInterim)
    : IAsyncLifetime, IDisposable
{
    private const string Host = "strict.test";
    private readonly TcpListener _listener = new(IPAddress.Parse("127.0.0.8"), 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _hintsSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _refusedRequests; // requests for /refused that reached the workload
    private TestLb? _lb;
    private EtcdConnection? _conn;
    private RegistryLease? _lease;

    private const string EarlyHints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";

    /// <summary>Content-Length values that are not only digits: a sign, a sign on zero, inner junk, hex, none, a list.</summary>
    public static readonly string[] BadLengths = ["+5", "-0", "5 5", "0x5", "", "5, 5"];

    /// <summary>What the workload answers for a request (pieces sent one after the other; null between them: wait for the test).</summary>
    private string?[] Script(string path, string body, bool expected) => path switch
    {
        // Early hints, then (once the client has them, where the way forwards them) the final answer.
        "/hints" => [EarlyHints, .. forwardsInterim ? new string?[] { null } : [], "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"],
        // A 100 Continue nobody asked for, then hints and the answer.
        "/continue-and-hints" => ["HTTP/1.1 100 Continue\r\n\r\n" + EarlyHints + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        // /length/N: BadLengths[N] as the answer's length; /length/good: 5.
        _ when path.StartsWith("/length/", StringComparison.Ordinal) => [Answer(Length(path["/length/".Length..]), "hello")],
        "/two-lengths" => ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"],
        _ => [Answer(null, $"got={body} expect={(expected ? "yes" : "no")}")],
    };

    private static string Length(string which) => which == "good" ? "5" : BadLengths[int.Parse(which, CultureInfo.InvariantCulture)];

    /// <summary>A 200 with <paramref name="body"/>, framed by <paramref name="length"/> (its own length when null).</summary>
    private static string Answer(string? length, string body) =>
        $"HTTP/1.1 200 OK\r\nContent-Length: {length ?? body.Length.ToString(CultureInfo.InvariantCulture)}\r\n\r\n{body}";

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptSocketAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            _ = Task.Run(() => ServeConnectionAsync(s));
        }
    }

    /// <summary>One workload connection: request heads (and bodies by their length), answered from the script.</summary>
    private async Task ServeConnectionAsync(Socket s)
    {
        using var socket = s;
        var pending = new StringBuilder();
        var buffer = new byte[8192];
        async Task<bool> ReadMore()
        {
            var n = await socket.ReceiveAsync(buffer, _stop.Token);
            pending.Append(Encoding.Latin1.GetString(buffer, 0, n));
            return n > 0;
        }
        try
        {
            while (true)
            {
                int end;
                while ((end = pending.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal)) < 0)
                    if (!await ReadMore()) return;
                var head = pending.ToString(0, end);
                pending.Remove(0, end + 4);
                var lines = head.Split("\r\n");
                var path = lines[0].Split(' ')[1];
                if (path == "/refused") Interlocked.Increment(ref _refusedRequests);
                string? Field(string name) => lines.Skip(1).Select(l => l.Split(':', 2))
                    .FirstOrDefault(p => p[0].Equals(name, StringComparison.OrdinalIgnoreCase))?[1].Trim();
                var expected = Field("Expect")?.Equals("100-continue", StringComparison.OrdinalIgnoreCase) == true;
                if (expected) await socket.SendAsync("HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(), _stop.Token);
                var length = Field("Content-Length") is { } l ? int.Parse(l, CultureInfo.InvariantCulture) : 0;
                while (pending.Length < length)
                    if (!await ReadMore()) return;
                var body = pending.ToString(0, length);
                pending.Remove(0, length);
                foreach (var piece in Script(path, body, expected))
                {
                    if (piece is null) await _hintsSeen.Task.WaitAsync(_stop.Token);
                    else await socket.SendAsync(Encoding.Latin1.GetBytes(piece), _stop.Token);
                }
                // A response whose framing is in doubt ends its connection.
                if (path.StartsWith("/length/", StringComparison.Ordinal) || path == "/two-lengths") return;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException) { }
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
        await store.PutAsync(Kinds.Workloads, Samples.Workload("strict01", app: "strict", ip: "127.0.0.8", httpPort: port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("strict01", ip: "127.0.0.8"), _lease.Id);
        await store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = Host,
            Init = "app",
            Nodes = new()
            {
                ["app"] = new LbNode
                {
                    Type = "backend",
                    Select = new LbSelector { App = "strict", Entrypoint = "web", Port = "http" },
                    Options = new LbBackendOptions { TimeoutMs = 5000, Retries = 0 },
                },
            },
        });
        _lb = await TestLb.StartAsync(etcd.Url, prefix, output, extra: ["--Lb:Transport", "epoll", .. lbFlags]);
        await Eventually.True(async () => (await Get("/ready")).Contains("got= expect=no", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "the LB routes to the scripted workload");
    }

    /// <summary>A GET on a new connection, read until <paramref name="answers"/> whole answers came (a 1xx counts as one).</summary>
    private Task<string> Get(string path, int answers = 1) =>
        RawHttp.ExchangeAsync(_lb!.Port, $"GET {path} HTTP/1.1\r\nHost: {Host}\r\n\r\n", answers);

    [Fact]
    public async Task A_request_Content_Length_that_is_not_only_digits_is_a_400_and_the_connection_closes()
    {
        var requests = new List<string>();
        foreach (var value in BadLengths)
            foreach (var method in (ReadOnlySpan<string>)["POST", "GET"])
                requests.Add($"{method} /refused HTTP/1.1\r\nHost: {Host}\r\nContent-Length: {value}\r\n\r\nhello");
        // Two lengths, even the same one twice.
        requests.Add($"POST /refused HTTP/1.1\r\nHost: {Host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
        requests.Add($"POST /refused HTTP/1.1\r\nHost: {Host}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
        var wrong = new List<string>();
        foreach (var request in requests)
        {
            using var socket = await RawHttp.OpenAsync(_lb!.Port);
            var answers = await RawHttp.ExchangeAsync(socket, request, 1, TimeSpan.Zero);
            if (answers is not [{ Status: 400 }])
            {
                wrong.Add($"{request.ReplaceLineEndings(" | ")} → {string.Join(", ", answers.Select(a => a.Status))}");
                continue;
            }
            await RawHttp.ReadAsync(socket, until: null); // returns when the LB closes (else its time limit fails the test)
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.Equal(0, Volatile.Read(ref _refusedRequests));

        // Digits (with the optional whitespace around them) are forwarded.
        var digits = $"POST /refused HTTP/1.1\r\nHost: {Host}\r\nContent-Length:  5 \r\n\r\nhello";
        var good = await RawHttp.ExchangeAsync(_lb!.Port, digits, 1);
        Assert.EndsWith("got=hello expect=no", good, StringComparison.Ordinal);
        Assert.Equal(1, Volatile.Read(ref _refusedRequests));
    }

    [Fact]
    public async Task A_response_Content_Length_that_is_not_only_digits_is_a_502()
    {
        for (var i = 0; i < BadLengths.Length; i++)
        {
            var answer = await Get($"/length/{i}");
            Assert.True(answer.StartsWith("HTTP/1.1 502 ", StringComparison.Ordinal), $"\"{BadLengths[i]}\": {answer}");
            Assert.DoesNotContain("hello", answer, StringComparison.Ordinal);
        }
        Assert.StartsWith("HTTP/1.1 502 ", await Get("/two-lengths"), StringComparison.Ordinal);
        Assert.EndsWith("hello", await Get("/length/good"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Early_hints_reach_the_client_before_the_final_answer_on_the_fast_path_and_are_dropped_by_Kestrel()
    {
        using var socket = await RawHttp.OpenAsync(_lb!.Port, $"GET /hints HTTP/1.1\r\nHost: {Host}\r\n\r\n");
        if (forwardsInterim)
        {
            // The workload sends the final answer only once the client has the hints: they were passed on as they came.
            var hints = await RawHttp.ReadAsync(socket, t => t.Contains("\r\n\r\n", StringComparison.Ordinal));
            Assert.StartsWith("HTTP/1.1 103 ", hints, StringComparison.Ordinal);
            Assert.Contains("\r\nLink: </style.css>; rel=preload; as=style\r\n", hints, StringComparison.Ordinal);
            Assert.DoesNotContain("200", hints, StringComparison.Ordinal);
            _hintsSeen.SetResult();
            var final = await RawHttp.ReadAsync(socket, t => t.EndsWith("final", StringComparison.Ordinal));
            Assert.StartsWith("HTTP/1.1 200 ", final, StringComparison.Ordinal);
        }
        else
        {
            // Kestrel's ways: the final answer alone (Kestrel's response API has no way to send a 1xx).
            var answer = await RawHttp.ReadAsync(socket, t => t.EndsWith("final", StringComparison.Ordinal));
            Assert.StartsWith("HTTP/1.1 200 ", answer, StringComparison.Ordinal);
            Assert.DoesNotContain("103", answer, StringComparison.Ordinal);
        }

        // An unasked-for 100 Continue, then hints, then the answer: each interim head passed on, or none.
        var all = RawHttp.Answers(Encoding.ASCII.GetBytes(await Get("/continue-and-hints", forwardsInterim ? 3 : 1)), head: false);
        Assert.Equal(forwardsInterim ? [100, 103, 200] : [200], all.Select(a => a.Status));
        Assert.Equal("ok", Encoding.ASCII.GetString(all[^1].Body));
    }

    [Fact]
    public async Task Expect_100_continue_reaches_the_workload_and_the_client_gets_100_Continue_then_the_answer()
    {
        // A request with a body goes through Kestrel and YARP on every way: Kestrel sends its 100 Continue when YARP
        // reads the body, which HttpClient does once the workload's 100 Continue came.
        using var socket = await RawHttp.OpenAsync(_lb!.Port,
            $"POST /upload HTTP/1.1\r\nHost: {Host}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        var interim = await RawHttp.ReadAsync(socket, t => t.Contains("\r\n\r\n", StringComparison.Ordinal));
        Assert.StartsWith("HTTP/1.1 100 Continue\r\n\r\n", interim, StringComparison.Ordinal);
        await socket.SendAsync("hello"u8.ToArray());
        var answer = await RawHttp.ReadAsync(socket, t => t.Contains(" expect=", StringComparison.Ordinal) && t[^1] is 's' or 'o');
        Assert.Contains("HTTP/1.1 200 ", answer, StringComparison.Ordinal);
        Assert.EndsWith("got=hello expect=yes", answer, StringComparison.Ordinal); // the workload was asked, and answered
    }

    public async Task DisposeAsync()
    {
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
