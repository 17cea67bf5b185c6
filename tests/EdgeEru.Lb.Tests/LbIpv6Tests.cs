using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// eru-lb over IPv6 on loopback (issue 21): listening on [::1], forwarding to workloads whose status carries only
/// <c>addresses6</c>, a backend's <c>family</c>, and the ip filter with IPv6 networks behind a trusted proxy. The
/// workloads are raw HTTP/1.1 servers on 127.0.0.1 and [::1] at one port, each answering with its family.
/// </summary>
public sealed class LbIpv6Tests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private readonly List<TestLb> _lbs = [];
    private readonly List<RawBackend> _backends = [];
    private EtcdConnection? _conn;
    private RegistryLease? _lease;
    private string _prefix = "";

    public async Task InitializeAsync()
    {
        // One port on both loopbacks: a workload with both families is reachable at either of its addresses.
        var (v4, v6) = RawBackend.PairOnBothLoopbacks();
        _backends.AddRange([v4, v6]);
        _prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(_prefix));
        var store = new RegistryStore(_conn);
        _lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), _lease.Id);
        // "only6": IPv6 only (its record requests no IPv4 address, its status has addresses6 alone).
        await store.PutAsync(Kinds.Workloads, Samples.Workload("only6", app: "six", tags: ["only6"], httpPort: v4.Port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("only6", ip6: "::1"), _lease.Id);
        // "both": an IPv4 and an IPv6 address.
        await store.PutAsync(Kinds.Workloads, Samples.Workload("both", app: "six", tags: ["both"], ip: "127.0.0.1", httpPort: v4.Port));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("both", ip: "127.0.0.1", ip6: "::1"), _lease.Id);
        await store.PutAsync(Kinds.LbDomains, new LbDomain
        {
            Name = "six.test",
            Init = "path",
            TrustedProxies = ["::1/128"], // the test client on [::1] is a trusted proxy: its X-Forwarded-For counts
            Nodes = new()
            {
                ["path"] = new LbNode { Type = "path", Match = "prefix", Value = "/office", Succ = "ip", Fail = "v4-path" },
                ["ip"] = new LbNode { Type = "ip", Cidrs = ["2001:db8::/32", "203.0.113.0/24"], Succ = "office", Fail = "elsewhere" },
                ["office"] = new LbNode { Type = "respond", Status = 200, Body = "office" },
                ["elsewhere"] = new LbNode { Type = "respond", Status = 200, Body = "elsewhere" },
                ["v4-path"] = new LbNode { Type = "path", Match = "prefix", Value = "/v4", Succ = "v4", Fail = "v6-path" },
                ["v4"] = new LbNode { Type = "backend", Select = Six("both", "ipv4") },
                ["v6-path"] = new LbNode { Type = "path", Match = "prefix", Value = "/v6", Succ = "v6", Fail = "any-path" },
                ["v6"] = new LbNode { Type = "backend", Select = Six("both", "ipv6") },
                ["any-path"] = new LbNode { Type = "path", Match = "prefix", Value = "/any", Succ = "any", Fail = "none-path" },
                ["any"] = new LbNode { Type = "backend", Select = Six("both", null) },
                ["none-path"] = new LbNode { Type = "path", Match = "prefix", Value = "/none", Succ = "none", Fail = "only6" },
                ["none"] = new LbNode { Type = "backend", Select = Six("only6", "ipv4") }, // no IPv4 address: nothing live
                ["only6"] = new LbNode { Type = "backend", Select = Six("only6", null) },
            },
        });
    }

    private static LbSelector Six(string tag, string? family) =>
        new() { App = "six", Entrypoint = "web", Port = "http", Tags = [tag], Family = family };

    private async Task<TestLb> StartLbAsync(params string[] extra)
    {
        var port = Ports.FreeTcp();
        var lb = await TestLb.StartAsync(etcd.Url, _prefix, output, extra: ["--Lb:Urls", $"http://[::1]:{port}", .. extra]);
        _lbs.Add(lb);
        return lb;
    }

    private static async Task<string> Text(HttpClient http, HttpMethod method, string path, string? forwardedFor = null)
    {
        using var req = new HttpRequestMessage(method, path);
        req.Headers.Host = "six.test";
        if (forwardedFor is not null) req.Headers.Add("X-Forwarded-For", forwardedFor);
        if (method == HttpMethod.Post) req.Content = new StringContent("hello");
        using var resp = await http.SendAsync(req);
        return $"{(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}";
    }

    [Theory]
    [InlineData("epoll")] // the fast path (GET) and YARP (POST)
    [InlineData("epoll-no-lane")] // Kestrel's direct HTTP/1.1 forwarding (GET) and YARP (POST)
    [InlineData("sockets")] // Kestrel's own transport, YARP for everything
    public async Task An_lb_on_ipv6_loopback_forwards_to_ipv6_workloads_by_family(string way)
    {
        var lb = await StartLbAsync(way switch
        {
            "epoll" => ["--Lb:Transport", "epoll"],
            "epoll-no-lane" => ["--Lb:Transport", "epoll", "--Lb:Http1Lane", "false"],
            _ => ["--Lb:Transport", "sockets"],
        });
        using var http = new HttpClient { BaseAddress = new Uri($"http://[::1]:{lb.Port}"), Timeout = TimeSpan.FromSeconds(20) };
        await Eventually.True(async () => (await Text(http, HttpMethod.Get, "/")).StartsWith("200 v6", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "six.test routes to the IPv6-only workload");

        // The client's own address is IPv6; the workload's Host is its bracketed address.
        Assert.Equal($"200 v6 GET / xff=::1 host=[::1]:{_backends[0].Port}", await Text(http, HttpMethod.Get, "/"));
        Assert.Equal($"200 v6 POST /a 5 xff=::1 host=[::1]:{_backends[0].Port}", await Text(http, HttpMethod.Post, "/a"));
        Assert.StartsWith("200 v4 GET /v4", await Text(http, HttpMethod.Get, "/v4"), StringComparison.Ordinal);
        Assert.StartsWith("200 v6 GET /v6", await Text(http, HttpMethod.Get, "/v6"), StringComparison.Ordinal);
        Assert.StartsWith("200 v6 POST /v6", await Text(http, HttpMethod.Post, "/v6"), StringComparison.Ordinal);
        Assert.StartsWith("200 v4 GET /any", await Text(http, HttpMethod.Get, "/any"), StringComparison.Ordinal); // IPv4 first
        Assert.StartsWith("503", await Text(http, HttpMethod.Get, "/none"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task An_lb_on_both_families_names_an_ipv4_client_as_ipv4(string transport)
    {
        // [::] is one dual-stack socket: the IPv4 client arrives as ::ffff:127.0.0.1 and is forwarded as 127.0.0.1.
        var port = Ports.FreeTcp();
        var lb = await TestLb.StartAsync(etcd.Url, _prefix, output,
            extra: ["--Lb:Urls", $"http://[::]:{port}", "--Lb:Transport", transport]);
        _lbs.Add(lb);
        using var v4 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) };
        using var v6 = new HttpClient { BaseAddress = new Uri($"http://[::1]:{port}"), Timeout = TimeSpan.FromSeconds(20) };
        await Eventually.True(async () => (await Text(v4, HttpMethod.Get, "/")).StartsWith("200 v6", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "six.test routes");
        // GET: the fast path on epoll, Kestrel on sockets; POST: Kestrel and YARP on both.
        Assert.StartsWith("200 v6 GET / xff=127.0.0.1 ", await Text(v4, HttpMethod.Get, "/"), StringComparison.Ordinal);
        Assert.StartsWith("200 v6 POST / 5 xff=127.0.0.1 ", await Text(v4, HttpMethod.Post, "/"), StringComparison.Ordinal);
        Assert.StartsWith("200 v6 GET / xff=::1 ", await Text(v6, HttpMethod.Get, "/"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_ip_filter_matches_ipv6_networks_and_ipv4_mapped_clients_through_a_trusted_proxy()
    {
        var lb = await StartLbAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://[::1]:{lb.Port}"), Timeout = TimeSpan.FromSeconds(20) };
        await Eventually.True(async () => (await Text(http, HttpMethod.Get, "/office")).StartsWith("200", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "six.test routes");

        Assert.Equal("200 elsewhere", await Text(http, HttpMethod.Get, "/office")); // the client is ::1 itself
        Assert.Equal("200 office", await Text(http, HttpMethod.Get, "/office", "2001:db8::7"));
        Assert.Equal("200 office", await Text(http, HttpMethod.Get, "/office", "192.0.2.1, 2001:db8:1::1")); // rightmost untrusted
        Assert.Equal("200 elsewhere", await Text(http, HttpMethod.Get, "/office", "2001:db9::1"));
        Assert.Equal("200 office", await Text(http, HttpMethod.Get, "/office", "::ffff:203.0.113.7")); // IPv4 as IPv6
        Assert.Equal("200 elsewhere", await Text(http, HttpMethod.Get, "/office", "::ffff:198.51.100.7"));
        Assert.Equal("200 office", await Text(http, HttpMethod.Post, "/office", "2001:db8::7")); // Kestrel's way too
    }

    public async Task DisposeAsync()
    {
        foreach (var lb in _lbs) await lb.DisposeAsync();
        foreach (var b in _backends) b.Dispose();
        if (_lease is not null) await _lease.DisposeAsync();
    }

    public void Dispose() => _conn?.Dispose();
}

/// <summary>
/// A workload that speaks HTTP/1.1 over a plain socket (kept alive): it answers
/// <c>{v4|v6} METHOD PATH BODYLENGTH? xff=… host=…</c>, so a test sees which family the LB connected with.
/// </summary>
internal sealed class RawBackend : IDisposable
{
    private readonly Socket _listener;
    private readonly string _family;

    private RawBackend(IPAddress address, int port)
    {
        _listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address, port));
        _listener.Listen(64);
        _family = address.AddressFamily == AddressFamily.InterNetworkV6 ? "v6" : "v4";
        _ = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>Backends on 127.0.0.1 and [::1] at the same port (tried again when the port is taken on ::1).</summary>
    public static (RawBackend V4, RawBackend V6) PairOnBothLoopbacks()
    {
        for (var attempt = 0; ; attempt++)
        {
            var v4 = new RawBackend(IPAddress.Loopback, 0);
            try
            {
                return (v4, new RawBackend(IPAddress.IPv6Loopback, v4.Port));
            }
            catch (SocketException) when (attempt < 20)
            {
                v4.Dispose();
            }
        }
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var connection = client;
        var data = new List<byte>();
        var buffer = new byte[8192];
        try
        {
            while (true)
            {
                int end;
                while ((end = HeadEnd(data)) < 0)
                {
                    var n = await client.ReceiveAsync(buffer);
                    if (n == 0) return;
                    data.AddRange(buffer.AsSpan(0, n));
                }
                var head = Encoding.ASCII.GetString(data.GetRange(0, end).ToArray()).Split("\r\n");
                var length = 0;
                string? xff = null, host = null;
                foreach (var line in head.Skip(1))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    var (name, value) = (line[..colon].Trim(), line[(colon + 1)..].Trim());
                    if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                        length = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                    else if (name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)) xff = value;
                    else if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) host = value;
                }
                while (data.Count < end + 4 + length)
                {
                    var n = await client.ReceiveAsync(buffer);
                    if (n == 0) return;
                    data.AddRange(buffer.AsSpan(0, n));
                }
                data.RemoveRange(0, end + 4 + length);
                var start = head[0].Split(' ');
                var body = $"{_family} {start[0]} {start[1]}{(start[0] == "POST" ? $" {length}" : "")} xff={xff} host={host}";
                await client.SendAsync(Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n\r\n{body}"));
            }
        }
        catch (SocketException) { } // the LB closed the connection
    }

    private static int HeadEnd(List<byte> data)
    {
        for (var i = 0; i + 3 < data.Count; i++)
            if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n') return i;
        return -1;
    }

    public void Dispose() => _listener.Dispose();
}
