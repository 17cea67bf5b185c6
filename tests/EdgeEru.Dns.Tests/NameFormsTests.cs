using DnsClient;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Dns.Tests;

/// <summary>The name forms the unit tests cover, asked once more of the running server by an outside client.</summary>
public sealed class NameFormsTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>
{
    [Fact]
    public async Task Node_PTR_static_SRV_and_apex_names_over_the_wire()
    {
        await using var server = await DnsTestServer.StartAsync(etcd, output, null, "--Dns:ReverseSubnets:0", "198.18.0.0/15");
        await server.Store.PutAsync(Kinds.Nodes, Samples.Node("n1"));
        await server.Store.PutAsync(Kinds.DnsRecords,
            new DnsRecordSet { Name = "db.eru", Records = [new StaticDnsRecord { Type = "A", Value = "198.18.0.5" }] });
        await using var lease = await server.LiveAsync("shop", ("aaaa01", "198.18.16.1"));
        var client = server.Client();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while ((await client.QueryAsync("web.shop.eru", QueryType.A)).Answers.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "web.shop.eru never answered");
            await Task.Delay(50);
        }

        Assert.Equal("198.18.1.1", (await client.QueryAsync("n1.node.eru", QueryType.A)).Answers.ARecords().Single().Address.ToString());
        Assert.Contains("alive=yes", (await client.QueryAsync("n1.node.eru", QueryType.TXT)).Answers.TxtRecords().Single().Text);
        Assert.Equal("aaaa01.web.shop.eru.",
            (await client.QueryAsync("1.16.18.198.in-addr.arpa", QueryType.PTR)).Answers.PtrRecords().Single().PtrDomainName.Value);
        Assert.Equal("198.18.0.5", (await client.QueryAsync("db.eru", QueryType.A)).Answers.ARecords().Single().Address.ToString());
        var srv = await client.QueryAsync("_http._tcp.web.shop.eru", QueryType.SRV);
        Assert.Equal("aaaa01.web.shop.eru.", srv.Answers.SrvRecords().Single().Target.Value);
        Assert.Equal("198.18.16.1", srv.Additionals.ARecords().Single().Address.ToString());
        Assert.Equal("ns1.eru.", (await client.QueryAsync("eru", QueryType.SOA)).Answers.SoaRecords().Single().MName.Value);
        Assert.Equal("198.18.16.1",
            (await client.QueryAsync("aaaa01.web.shop.eru", QueryType.A)).Answers.ARecords().Single().Address.ToString());
        Assert.Equal("198.18.16.1",
            (await client.QueryAsync("v1.web.shop.eru", QueryType.A)).Answers.ARecords().Single().Address.ToString());
    }
}
