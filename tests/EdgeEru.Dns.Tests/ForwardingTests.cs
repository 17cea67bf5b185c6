using DnsClient;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Dns.Tests;

/// <summary>Forwarding names outside our zones to a second local server (another eru-dns, serving zone "other.").</summary>
public sealed class ForwardingTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>
{
    private static async Task<IDnsQueryResponse> UntilAnswered(LookupClient client, string name, QueryType type, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var r = await client.QueryAsync(name, type);
            if (r.Answers.Count == count) return r;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{name}: {r.Answers.Count} answers, not {count} ({r.Header.ResponseCode})");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Other_names_are_forwarded_cached_and_answered_SERVFAIL_when_upstreams_are_gone()
    {
        var upstream = await DnsTestServer.StartAsync(etcd, output, null, "--Dns:Zones:0:Name", "other.");
        var lease = await upstream.LiveAsync("shop", ("aaaa01", "198.18.20.1"), ("bbbb02", "198.18.20.2"));
        await UntilAnswered(upstream.Client(), "web.shop.other", QueryType.A, 2);

        await using var ours = await DnsTestServer.StartAsync(etcd, output, null,
            "--Dns:Forward:Upstreams:0", $"127.0.0.1:{upstream.Port}", "--Dns:Forward:Timeout", "00:00:01");
        var r = await UntilAnswered(ours.Client(), "web.shop.other", QueryType.A, 2);
        Assert.True(r.Header.RecursionAvailable);
        Assert.False(r.Header.HasAuthorityAnswer); // we forwarded it: not ours to vouch for
        var nx = await ours.Client().QueryAsync("nope.shop.other", QueryType.A);
        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, nx.Header.ResponseCode);
        using (var http = new HttpClient())
        {
            var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{ours.HttpPort}/metrics"));
            Assert.Contains($"eru_dns_upstream_up{{upstream=\"127.0.0.1:{upstream.Port}\"}} 1", metrics, StringComparison.Ordinal);
            Assert.Contains("eru_dns_forwarded_total{result=\"upstream\"}", metrics, StringComparison.Ordinal);
        }
        // Our own zone is still answered by us, authoritatively.
        Assert.True((await ours.Client().QueryAsync("eru", QueryType.SOA)).Header.HasAuthorityAnswer);

        // The upstream goes away: cached answers live on for their TTL (5 s), the rest fail cleanly.
        await lease.DisposeAsync();
        await upstream.DisposeAsync();
        var cached = await ours.Client().QueryAsync("web.shop.other", QueryType.A);
        Assert.Equal(2, cached.Answers.Count);
        Assert.All(cached.Answers, a => Assert.InRange(a.TimeToLive, 0, 5));
        var cachedNx = await ours.Client().QueryAsync("nope.shop.other", QueryType.A);
        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, cachedNx.Header.ResponseCode); // negative answers are cached too
        var failed = await ours.Client().QueryAsync("web.blog.other", QueryType.A);
        Assert.Equal(DnsHeaderResponseCode.ServerFailure, failed.Header.ResponseCode);
    }

    [Fact]
    public async Task A_large_forwarded_answer_comes_over_TCP_in_full()
    {
        await using var upstream = await DnsTestServer.StartAsync(etcd, output, null, "--Dns:Zones:0:Name", "other.");
        var many = Enumerable.Range(0, 150).Select(i => ($"w{i:D4}", $"198.18.21.{i + 1}")).ToArray();
        await using var lease = await upstream.LiveAsync("big", many);
        await UntilAnswered(upstream.Client(tcpOnly: true), "web.big.other", QueryType.A, 150);

        await using var ours =
            await DnsTestServer.StartAsync(etcd, output, null, "--Dns:Forward:Upstreams:0", $"127.0.0.1:{upstream.Port}");
        // Over UDP alone: truncated; the client's TCP retry gets everything (and we fetched it over TCP too).
        var truncated = await Assert.ThrowsAsync<DnsResponseException>(
            () => ours.Client(fallbackToTcp: false).QueryAsync("web.big.other", QueryType.A));
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);
        var full = await ours.Client().QueryAsync("web.big.other", QueryType.A);
        Assert.Equal(150, full.Answers.ARecords().Count());
    }

    [Fact]
    public async Task Clients_outside_the_allowed_networks_are_refused()
    {
        await using var upstream = await DnsTestServer.StartAsync(etcd, output, null, "--Dns:Zones:0:Name", "other.");
        await using var ours = await DnsTestServer.StartAsync(etcd, output, null,
            "--Dns:Forward:Upstreams:0", $"127.0.0.1:{upstream.Port}", "--Dns:Forward:AllowFrom:0", "10.0.0.0/8");
        var r = await ours.Client().QueryAsync("web.shop.other", QueryType.A);
        Assert.Equal(DnsHeaderResponseCode.Refused, r.Header.ResponseCode);
        Assert.False(r.Header.RecursionAvailable);
    }

    [Fact]
    public async Task Without_upstreams_other_names_are_refused()
    {
        await using var ours = await DnsTestServer.StartAsync(etcd, output);
        Assert.Equal(DnsHeaderResponseCode.Refused, (await ours.Client().QueryAsync("example.com", QueryType.A)).Header.ResponseCode);
    }
}
