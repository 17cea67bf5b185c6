using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Dns.Tests;

/// <summary>The real server on loopback, following a real etcd, asked by DnsClient and by dig.</summary>
public sealed class DnsServerTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private DnsTestServer? _server;
    private int _port;
    private int _httpPort;

    private async Task<(EtcdConnection Conn, RegistryStore Store)> StartAsync(string? etcdUrl = null)
    {
        _server = await DnsTestServer.StartAsync(etcd, output, etcdUrl);
        _port = _server.Port;
        _httpPort = _server.HttpPort;
        return (_server.Conn, _server.Store);
    }

    private LookupClient Client(bool tcpOnly = false) => _server!.Client(tcpOnly);

    private static async Task<RegistryLease> LiveAsync(RegistryStore store, string id, string ip, string[] tags, string node = "n1")
    {
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await store.PutAsync(Kinds.Workloads, Samples.Workload(id, tags: tags, ip: ip, node: node));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, node, ip: ip), lease.Id);
        return lease;
    }

    private async Task<string[]> AddressesAsync(string name)
    {
        var r = await Client().QueryAsync(name, QueryType.A);
        return r.Answers.ARecords().Select(a => a.Address.ToString()).Order().ToArray();
    }

    private async Task EventuallyAsync(string name, string[] expected)
    {
        var deadline = DateTime.UtcNow + Wait;
        string[] got;
        while (!(got = await AddressesAsync(name)).SequenceEqual(expected))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name}: expected [{string.Join(",", expected)}], still [{string.Join(",", got)}]");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Names_follow_the_registry_live_health_and_lease_expiry_included()
    {
        var (_, store) = await StartAsync();
        await using var node = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), node.Id);
        await using var l1 = await LiveAsync(store, "aaaa01", "198.18.16.1", ["v1"]);
        await using var l2 = await LiveAsync(store, "bbbb02", "198.18.16.2", ["v1"]);
        var l3 = await LiveAsync(store, "cccc03", "198.18.16.3", ["v2"]);

        await EventuallyAsync("web.shop.eru", ["198.18.16.1", "198.18.16.2", "198.18.16.3"]);
        Assert.Equal(["198.18.16.3"], await AddressesAsync("v2.web.shop.eru"));
        Assert.Equal(["198.18.16.2"], await AddressesAsync("bbbb02.web.shop.eru"));
        var srv = await Client().QueryAsync("_http._tcp.web.shop.eru", QueryType.SRV);
        Assert.Equal(3, srv.Answers.SrvRecords().Count());

        // Unhealthy: gone at once.
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("bbbb02", healthy: false, ip: "198.18.16.2"), l2.Id);
        await EventuallyAsync("web.shop.eru", ["198.18.16.1", "198.18.16.3"]);
        var nx = await Client().QueryAsync("bbbb02.web.shop.eru", QueryType.A);
        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, nx.Header.ResponseCode);
        Assert.IsType<SoaRecord>(Assert.Single(nx.Authorities));

        // The agent of cccc03 dies: its status goes with the lease (revoked here, as at expiry).
        await l3.DisposeAsync();
        await EventuallyAsync("v2.web.shop.eru", []);
        await EventuallyAsync("web.shop.eru", ["198.18.16.1"]);
    }

    [Fact]
    public async Task Dig_as_an_outside_client_gets_answers_and_retries_large_ones_over_TCP()
    {
        var (_, store) = await StartAsync();
        await using var node = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), node.Id);
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 200; i += 50)
        {
            var tx = store.Begin();
            for (var j = i; j < i + 50; j++)
            {
                var ip = $"198.18.17.{j + 1}";
                tx.Put(Kinds.Workloads, Samples.Workload($"w{j:D4}", ip: ip));
                tx.Put(Kinds.WorkloadStatus, Samples.Status($"w{j:D4}", ip: ip), lease.Id);
            }
            Assert.True(await tx.CommitAsync());
        }
        await EventuallyCountAsync("web.shop.eru", 200);

        var (code, stdout) = await DigAsync("web.shop.eru", "A", "+short");
        Assert.Equal(0, code);
        Assert.Equal(200, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // dig saw TC and asked again over TCP
        var (_, full) = await DigAsync("WEB.shop.eru", "A", "+notcp", "+ignore");
        Assert.Contains("flags: qr aa tc rd;", full, StringComparison.Ordinal); // over UDP alone: truncated, no records
        Assert.Contains("ANSWER: 0,", full, StringComparison.Ordinal);
        Assert.Contains("WEB.shop.eru.", full, StringComparison.Ordinal); // case preserved
        var (_, nx) = await DigAsync("nope.shop.eru", "A");
        Assert.Contains("status: NXDOMAIN", nx, StringComparison.Ordinal);
        Assert.Contains("IN\tSOA", nx, StringComparison.Ordinal);
        var (_, refused) = await DigAsync("example.com", "A");
        Assert.Contains("status: REFUSED", refused, StringComparison.Ordinal);
        var (_, badvers) = await DigAsync("web.shop.eru", "A", "+edns=1", "+noednsnegotiation");
        Assert.Contains("status: BADVERS", badvers, StringComparison.Ordinal);
        // RFC 3225 3: the DO bit of the query is copied into the answer's OPT record, and only then.
        var (_, dnssec) = await DigAsync("web.shop.eru", "A", "+dnssec");
        Assert.Contains("; EDNS: version: 0, flags: do;", dnssec, StringComparison.Ordinal);
        var (_, plain) = await DigAsync("web.shop.eru", "A");
        Assert.Contains("; EDNS: version: 0, flags:;", plain, StringComparison.Ordinal);
    }

    private async Task EventuallyCountAsync(string name, int count)
    {
        var deadline = DateTime.UtcNow + Wait;
        while ((await Client(tcpOnly: true).QueryAsync(name, QueryType.A)).Answers.Count != count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name}: never reached {count} answers");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Garbage_gets_FORMERR_or_silence_and_the_server_keeps_answering()
    {
        var (_, store) = await StartAsync();
        await using var node = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), node.Id);
        await using var l1 = await LiveAsync(store, "aaaa01", "198.18.16.1", ["v1"]);
        await EventuallyAsync("web.shop.eru", ["198.18.16.1"]);

        using var udp = new UdpClient();
        udp.Connect(IPAddress.Loopback, _port);
        var rnd = new Random(3);
        var formErr = 0;
        for (var i = 0; i < 300; i++)
        {
            var junk = new byte[rnd.Next(12, 300)];
            rnd.NextBytes(junk);
            junk[2] &= 0x7F; // a query, not a response
            junk[2] &= 0x87; // opcode QUERY
            await udp.SendAsync(junk);
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            while (true)
            {
                var r = await udp.ReceiveAsync(cts.Token);
                if ((r.Buffer[3] & 0xF) == 1) formErr++;
            }
        }
        catch (OperationCanceledException)
        {
        }
        Assert.True(formErr > 100, $"only {formErr} FORMERR answers to 300 garbage queries");
        Assert.Equal(["198.18.16.1"], await AddressesAsync("web.shop.eru"));

        // Same over TCP: a bad message, then a good one on the same connection.
        var tcp = await Client(tcpOnly: true).QueryAsync("web.shop.eru", QueryType.A);
        Assert.Single(tcp.Answers);
    }

    [Fact]
    public async Task Answers_continue_from_the_last_snapshot_through_an_etcd_restart()
    {
        await using var server = await EtcdServer.StartAsync();
        var (_, store) = await StartAsync(server.ClientUrl);
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), (await store.GrantLeaseAsync(TimeSpan.FromSeconds(60))).Id);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await store.PutAsync(Kinds.Workloads, Samples.Workload("aaaa01", ip: "198.18.16.1"));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("aaaa01", ip: "198.18.16.1"), lease.Id);
        await EventuallyAsync("web.shop.eru", ["198.18.16.1"]);

        await server.StopAsync(kill: true);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(["198.18.16.1"], await AddressesAsync("web.shop.eru")); // never SERVFAIL for etcd's absence
            await Task.Delay(100);
        }
        using var http = new HttpClient();
        var health = await http.GetStringAsync(new Uri($"http://127.0.0.1:{_httpPort}/healthz"));
        Assert.Contains("\"registryInTouch\":false", health, StringComparison.Ordinal);

        await server.StartAsync();
        await store.PutAsync(Kinds.Workloads, Samples.Workload("bbbb02", ip: "198.18.16.2"));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("bbbb02", ip: "198.18.16.2"), lease.Id);
        await EventuallyAsync("web.shop.eru", ["198.18.16.1", "198.18.16.2"]);
        var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{_httpPort}/metrics"));
        Assert.Contains("eru_dns_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\"}", metrics, StringComparison.Ordinal);
        Assert.Matches(
            new System.Text.RegularExpressions.Regex("^eru_registry_revision", System.Text.RegularExpressions.RegexOptions.Multiline),
            metrics);
    }

    [Fact]
    public async Task Dig_AAAA_follows_IPv6_addresses_in_the_registry_with_PTR_under_ip6_arpa()
    {
        _server = await DnsTestServer.StartAsync(etcd, output, null,
            "--Dns:ReverseSubnets:0", "198.18.0.0/15", "--Dns:ReverseSubnets:1", "fd00:e0::/48");
        _port = _server.Port;
        var store = _server.Store;
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload("aaaa01", tags: ["v1"], ip: "198.18.16.1"));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("aaaa01", ip: "198.18.16.1", ip6: "fd00:e0:0:2::1"), lease.Id);
        await store.PutAsync(Kinds.Workloads, Samples.Workload("bbbb02", tags: ["v2"], ip: "198.18.16.2"));
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("bbbb02", ip: "198.18.16.2"), lease.Id);

        var deadline = DateTime.UtcNow + Wait;
        string aaaa;
        while ((aaaa = (await DigAsync("web.shop.eru", "AAAA", "+short")).Stdout.Trim()) != "fd00:e0:0:2::1")
        {
            Assert.True(DateTime.UtcNow < deadline, $"web.shop.eru AAAA: still \"{aaaa}\"");
            await Task.Delay(50);
        }
        Assert.Equal("fd00:e0:0:2::1", (await DigAsync("v1.web.shop.eru", "AAAA", "+short")).Stdout.Trim());
        Assert.Equal("fd00:e0:0:2::1", (await DigAsync("aaaa01.web.shop.eru", "AAAA", "+short")).Stdout.Trim());
        // An IPv4-only instance asked for AAAA: NODATA, the SOA in the authority section.
        var (_, nodata) = await DigAsync("bbbb02.web.shop.eru", "AAAA");
        Assert.Contains("status: NOERROR", nodata, StringComparison.Ordinal);
        Assert.Contains("ANSWER: 0,", nodata, StringComparison.Ordinal);
        Assert.Contains("AUTHORITY: 1,", nodata, StringComparison.Ordinal);
        // SRV: the target's A and AAAA in the additional section.
        var (_, srv) = await DigAsync("_http._tcp.web.shop.eru", "SRV");
        Assert.Contains("aaaa01.web.shop.eru.\t5\tIN\tAAAA\tfd00:e0:0:2::1", srv, StringComparison.Ordinal);
        Assert.Contains("aaaa01.web.shop.eru.\t5\tIN\tA\t198.18.16.1", srv, StringComparison.Ordinal);
        // dig -x spells the ip6.arpa name.
        Assert.Equal("aaaa01.web.shop.eru.", (await DigAsync("-x", "fd00:e0:0:2::1", "+short")).Stdout.Trim());
        var (_, nx) = await DigAsync("-x", "fd00:e0:0:2::9");
        Assert.Contains("status: NXDOMAIN", nx, StringComparison.Ordinal);

        // The address goes: AAAA follows.
        await store.PutAsync(Kinds.WorkloadStatus, Samples.Status("aaaa01", ip: "198.18.16.1"), lease.Id);
        while ((await DigAsync("web.shop.eru", "AAAA")).Stdout is var gone && !gone.Contains("ANSWER: 0,", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline + Wait, "web.shop.eru AAAA still answers after the address went");
            await Task.Delay(50);
        }
    }

    private async Task<(int Code, string Stdout)> DigAsync(string name, string type, params string[] extra)
    {
        var dig = Tools.Find("dig", "bind9-dnsutils");
        var psi = new ProcessStartInfo(dig) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["@127.0.0.1", "-p", _port.ToString(), name, type, "+tries=1", "+time=2", .. extra])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        output.WriteLine($"dig {name} {type} {string.Join(' ', extra)}:\n{stdout}");
        return (p.ExitCode, stdout);
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }
}
