using System.Net;
using ARSoft.Tools.Net.Dns;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;
using EdgeEru.Registry;
using EdgeEru.Registry.Snapshot;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Dns.Tests;

/// <summary>IPv6 beside IPv4: AAAA where A is answered, both families in SRV additionals, ip6.arpa PTR, NODATA per family.</summary>
public class DualStackTests
{
    private readonly DnsOptions _options = new() { ReverseSubnets = ["198.18.0.0/15", "fd00:e0::/62"] };
    private RegistrySnapshot _snapshot = RegistrySnapshot.Empty;
    private DnsTable? _table;

    private QueryProcessor Processor() => new(() => _table);

    private void Registry(params RegistryChange[] changes)
    {
        _snapshot = _snapshot.Apply(changes, _snapshot.Revision + 1);
        _table = DnsTableBuilder.Build(_options, _snapshot, _table);
    }

    private static RegistryChange[] Live(string id, string? ip, string? ip6, params string[] tags) =>
    [
        RegistryChange.Put(Kinds.Workloads, Samples.Workload(id, tags: tags, ip: ip)),
        RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id, ip: ip, ip6: ip6), lease: 1),
    ];

    /// <summary>Two dual-stack instances (v1), one IPv4-only (v2), one IPv6-only (v3), on a dual-stack node.</summary>
    private void Cluster() => Registry([
        RegistryChange.Put(Kinds.Nodes, Samples.Node("n1") with { Address6 = "fd00:e0:0:1::1" }),
        RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
        .. Live("aaaa01", "198.18.16.1", "fd00:e0:0:2::1", "v1"),
        .. Live("bbbb02", "198.18.16.2", "fd00:e0:0:2::2", "v1"),
        .. Live("cccc03", "198.18.16.3", null, "v2"),
        .. Live("dddd04", null, "FD00:E0:0:2:0:0:0:4", "v3"),
    ]);

    private static string[] V4(DnsMessage m) => m.AnswerRecords.OfType<ARecord>().Select(a => a.Address.ToString()).Order().ToArray();

    private static string[] V6(DnsMessage m) => m.AnswerRecords.OfType<AaaaRecord>().Select(a => a.Address.ToString()).Order().ToArray();

    private static void AssertNoData(DnsMessage m)
    {
        Assert.Equal(ReturnCode.NoError, m.ReturnCode);
        Assert.Empty(m.AnswerRecords);
        Assert.IsType<SoaRecord>(Assert.Single(m.AuthorityRecords));
    }

    [Fact]
    public void A_service_answers_AAAA_for_its_IPv6_instances_and_A_for_its_IPv4_ones()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(["fd00:e0:0:2::1", "fd00:e0:0:2::2", "fd00:e0:0:2::4"], V6(Query.Ask(p, "web.shop.eru", DnsType.AAAA)));
        Assert.Equal(["198.18.16.1", "198.18.16.2", "198.18.16.3"], V4(Query.Ask(p, "web.shop.eru", DnsType.A)));
        var txt = Assert.IsType<TxtRecord>(Assert.Single(Query.Ask(p, "web.shop.eru", DnsType.TXT).AnswerRecords));
        Assert.Contains("live=4", txt.TextParts); // instances, not addresses
        Assert.Contains("tags=v1:2,v2:1,v3:1", txt.TextParts);
    }

    [Fact]
    public void Tags_and_idents_answer_AAAA_and_a_name_of_the_other_family_only_is_NODATA()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(["fd00:e0:0:2::1", "fd00:e0:0:2::2"], V6(Query.Ask(p, "v1.web.shop.eru", DnsType.AAAA)));
        Assert.Equal(["fd00:e0:0:2::2"], V6(Query.Ask(p, "bbbb02.web.shop.eru", DnsType.AAAA)));
        Assert.Equal(["198.18.16.2"], V4(Query.Ask(p, "bbbb02.web.shop.eru", DnsType.A)));
        AssertNoData(Query.Ask(p, "cccc03.web.shop.eru", DnsType.AAAA)); // IPv4 only
        AssertNoData(Query.Ask(p, "v2.web.shop.eru", DnsType.AAAA));
        AssertNoData(Query.Ask(p, "dddd04.web.shop.eru", DnsType.A)); // IPv6 only
        AssertNoData(Query.Ask(p, "v3.web.shop.eru", DnsType.A));
        Assert.Equal(["fd00:e0:0:2::4"], V6(Query.Ask(p, "v3.web.shop.eru", DnsType.AAAA)));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "v9.web.shop.eru", DnsType.AAAA).ReturnCode);
    }

    [Fact]
    public void A_service_whose_instances_are_all_IPv4_is_NODATA_for_AAAA()
    {
        Registry([
            RegistryChange.Put(Kinds.Nodes, Samples.Node("n1")), RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
            .. Live("aaaa01", "198.18.16.1", null, "v1"),
        ]);
        AssertNoData(Query.Ask(Processor(), "web.shop.eru", DnsType.AAAA));
        AssertNoData(Query.Ask(Processor(), "n1.node.eru", DnsType.AAAA));
    }

    [Fact]
    public void SRV_carries_the_addresses_of_both_families_of_each_target()
    {
        Cluster();
        var m = Query.Ask(Processor(), "_http._tcp.web.shop.eru", DnsType.SRV);
        Assert.Equal(4, m.AnswerRecords.OfType<SrvRecord>().Count());
        Assert.Equal(3, m.AdditionalRecords.OfType<ARecord>().Count());
        Assert.Equal(3, m.AdditionalRecords.OfType<AaaaRecord>().Count());
        Assert.Contains(m.AdditionalRecords.OfType<AaaaRecord>(),
            a => a.Name.ToString() == "aaaa01.web.shop.eru." && a.Address.ToString() == "fd00:e0:0:2::1");
        Assert.Contains(m.AdditionalRecords.OfType<ARecord>(),
            a => a.Name.ToString() == "aaaa01.web.shop.eru." && a.Address.ToString() == "198.18.16.1");
        Assert.Contains(m.AdditionalRecords.OfType<AaaaRecord>(), a => a.Name.ToString() == "dddd04.web.shop.eru.");
        Assert.DoesNotContain(m.AdditionalRecords.OfType<ARecord>(), a => a.Name.ToString() == "dddd04.web.shop.eru.");
    }

    [Fact]
    public void A_node_answers_AAAA_from_its_address6()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(["fd00:e0:0:1::1"], V6(Query.Ask(p, "n1.node.eru", DnsType.AAAA)));
        Assert.Equal(["198.18.1.1"], V4(Query.Ask(p, "n1.node.eru", DnsType.A)));
    }

    [Fact]
    public void Every_IPv6_workload_address_in_a_reverse_subnet_has_a_PTR()
    {
        Cluster();
        var p = Processor();
        var m = Query.Ask(p, Ip6Arpa("fd00:e0:0:2::2"), DnsType.PTR);
        Assert.Equal(ReturnCode.NoError, m.ReturnCode);
        Assert.True(m.IsAuthoritiveAnswer);
        Assert.Equal("bbbb02.web.shop.eru.", Assert.IsType<PtrRecord>(Assert.Single(m.AnswerRecords)).PointerDomainName.ToString());
        var upper = Query.Ask(p, Ip6Arpa("fd00:e0:0:2::4").ToUpperInvariant(), DnsType.PTR); // hex digits in either case
        Assert.Equal("dddd04.web.shop.eru.", Assert.IsType<PtrRecord>(Assert.Single(upper.AnswerRecords)).PointerDomainName.ToString());
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, Ip6Arpa("fd00:e0:0:2::9"), DnsType.PTR).ReturnCode);
        AssertNoData(Query.Ask(p, Ip6Arpa("fd00:e0:0:2::2"), DnsType.A));
        // /62: four /64 zones, each with its SOA; outside them REFUSED.
        Assert.IsType<SoaRecord>(Assert.Single(Query.Ask(p, "3.0.0.0.0.0.0.0.0.e.0.0.0.0.d.f.ip6.arpa", DnsType.SOA).AnswerRecords));
        Assert.Equal(ReturnCode.Refused, Query.Ask(p, Ip6Arpa("fd00:e0:0:4::1"), DnsType.PTR).ReturnCode);
        // Names on the way exist only where live addresses lie below them (RFC 8020).
        AssertNoData(Query.Ask(p, "0.0.0.0.2.0.0.0.0.0.0.0.0.e.0.0.0.0.d.f.ip6.arpa", DnsType.PTR));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "1.0.0.0.2.0.0.0.0.0.0.0.0.e.0.0.0.0.d.f.ip6.arpa", DnsType.PTR).ReturnCode);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "x.0.0.0.2.0.0.0.0.0.0.0.0.e.0.0.0.0.d.f.ip6.arpa", DnsType.PTR).ReturnCode);
        // IPv4 still answers beside it.
        Assert.Equal("aaaa01.web.shop.eru.",
            Assert.IsType<PtrRecord>(Assert.Single(Query.Ask(p, "1.16.18.198.in-addr.arpa", DnsType.PTR).AnswerRecords))
                .PointerDomainName.ToString());
    }

    [Fact]
    public void Reverse_zones_are_nibble_aligned_and_IPv6_subnets_are_checked()
    {
        Assert.Equal(["0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."],
            DnsTableBuilder.ReverseZones(["2001:db8::/63"]));
        Assert.Equal(["8.b.d.0.1.0.0.2.ip6.arpa."], DnsTableBuilder.ReverseZones(["2001:db8::/32"]));
        Assert.Empty(new DnsOptions { ReverseSubnets = ["198.18.0.0/15", "2001:db8::/48"] }.Problems());
        Assert.Contains(new DnsOptions { ReverseSubnets = ["2001::/8"] }.Problems(), p => p.Contains("/16 to /124"));
        Assert.Contains(new DnsOptions { ReverseSubnets = ["2001:db8::/zz"] }.Problems(), p => p.Contains("CIDR"));
    }

    [Fact]
    public void A_workload_losing_its_IPv6_address_leaves_AAAA_and_the_reverse_zone()
    {
        Cluster();
        var p = Processor();
        Registry(RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("aaaa01", ip: "198.18.16.1"), 1));
        Assert.Equal(["fd00:e0:0:2::2", "fd00:e0:0:2::4"], V6(Query.Ask(p, "web.shop.eru", DnsType.AAAA)));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, Ip6Arpa("fd00:e0:0:2::1"), DnsType.PTR).ReturnCode);
        Assert.Null(_snapshot.LiveAt("fd00:e0:0:2::1"));
        Assert.Equal("bbbb02", _snapshot.LiveAt("fd00:e0:0:2:0:0:0:2")!.Record!.Ident); // any spelling
    }

    [Fact]
    public void IPv6_queries_allocate_nothing()
    {
        Cluster();
        var p = Processor();
        var queries = new[] { Query.Build("web.shop.eru", DnsType.AAAA), Query.Build("v1.web.shop.eru", DnsType.AAAA),
            Query.Build("cccc03.web.shop.eru", DnsType.AAAA), Query.Build(Ip6Arpa("fd00:e0:0:2::1"), DnsType.PTR),
            Query.Build("0.0.0.0.2.0.0.0.0.0.0.0.0.e.0.0.0.0.d.f.ip6.arpa", DnsType.PTR) };
        var buffer = new byte[DnsLimits.MaxMessage];
        foreach (var q in queries) p.Process(q, buffer, false); // warm up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
            foreach (var q in queries) p.Process(q, buffer, false);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>The 32-nibble reverse name of an IPv6 address.</summary>
    internal static string Ip6Arpa(string address)
    {
        var hex = Convert.ToHexStringLower(IPAddress.Parse(address).GetAddressBytes());
        return string.Join('.', hex.Reverse()) + ".ip6.arpa";
    }
}
