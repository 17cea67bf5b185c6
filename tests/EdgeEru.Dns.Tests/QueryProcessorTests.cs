using ARSoft.Tools.Net.Dns;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Dns.Tests;

/// <summary>The protocol logic, with no sockets: packets in, packets out, parsed by an independent library.</summary>
public class QueryProcessorTests
{
    private readonly DnsOptions _options = new() { ReverseSubnets = ["198.18.0.0/15"] };
    private RegistrySnapshot _snapshot = RegistrySnapshot.Empty;
    private DnsTable? _table;

    private QueryProcessor Processor() => new(() => _table);

    /// <summary>Applies registry changes and rebuilds the table incrementally, as the server does.</summary>
    private void Registry(params RegistryChange[] changes)
    {
        _snapshot = _snapshot.Apply(changes, _snapshot.Revision + 1);
        _table = DnsTableBuilder.Build(_options, _snapshot, _table);
    }

    private static RegistryChange[] Live(string id, string ip, string app = "shop", string entrypoint = "web", string node = "n1",
        params string[] tags) =>
    [
        RegistryChange.Put(Kinds.Workloads, Samples.Workload(id, app, entrypoint, node, tags.Length == 0 ? ["v1"] : tags, ip)),
        RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id, node, ip: ip), lease: 1),
    ];

    private void Cluster()
    {
        Registry([
            RegistryChange.Put(Kinds.Nodes, Samples.Node("n1")), RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
            .. Live("aaaa01", "198.18.16.1", tags: ["v1"]),
            .. Live("bbbb02", "198.18.16.2", tags: ["v1"]),
            .. Live("cccc03", "198.18.16.3", tags: ["v2", "canary"]),
        ]);
    }

    private static string[] Addresses(DnsMessage m) =>
        m.AnswerRecords.OfType<ARecord>().Select(a => a.Address.ToString()).Order().ToArray();

    [Fact]
    public void A_service_name_answers_every_live_instance_authoritatively_and_rotates()
    {
        Cluster();
        var p = Processor();
        var m = Query.Ask(p, "web.shop.eru", DnsType.A);
        Assert.Equal(ReturnCode.NoError, m.ReturnCode);
        Assert.True(m.IsAuthoritiveAnswer);
        Assert.False(m.IsRecursionAllowed);
        Assert.Equal(["198.18.16.1", "198.18.16.2", "198.18.16.3"], Addresses(m));
        Assert.All(m.AnswerRecords, r => Assert.Equal(5, r.TimeToLive));
        var firsts = Enumerable.Range(0, 3)
            .Select(_ => ((ARecord)Query.Ask(p, "web.shop.eru", DnsType.A).AnswerRecords[0]).Address.ToString())
            .ToHashSet();
        Assert.Equal(3, firsts.Count); // each instance leads in turn
    }

    [Fact]
    public void Tags_and_instances_answer_their_subset()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(["198.18.16.1", "198.18.16.2"], Addresses(Query.Ask(p, "v1.web.shop.eru", DnsType.A)));
        Assert.Equal(["198.18.16.3"], Addresses(Query.Ask(p, "canary.web.shop.eru", DnsType.A)));
        Assert.Equal(["198.18.16.2"], Addresses(Query.Ask(p, "bbbb02.web.shop.eru", DnsType.A)));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "v9.web.shop.eru", DnsType.A).ReturnCode);
    }

    [Fact]
    public void SRV_names_each_instance_with_its_port_and_address()
    {
        Cluster();
        var m = Query.Ask(Processor(), "_http._tcp.web.shop.eru", DnsType.SRV);
        var srv = m.AnswerRecords.OfType<SrvRecord>().OrderBy(s => s.Target.ToString()).ToList();
        Assert.Equal(3, srv.Count);
        Assert.Equal("aaaa01.web.shop.eru.", srv[0].Target.ToString());
        Assert.Equal(80, srv[0].Port);
        Assert.Equal(3, m.AdditionalRecords.OfType<ARecord>().Count());
        Assert.Contains(m.AdditionalRecords.OfType<ARecord>(),
            a => a.Name.ToString() == "aaaa01.web.shop.eru." && a.Address.ToString() == "198.18.16.1");
        // The names on the way exist, with no data.
        Assert.Equal(ReturnCode.NoError, Query.Ask(Processor(), "_tcp.web.shop.eru", DnsType.A).ReturnCode);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(Processor(), "_udp.web.shop.eru", DnsType.A).ReturnCode);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(Processor(), "_grpc._tcp.web.shop.eru", DnsType.SRV).ReturnCode);
    }

    [Fact]
    public void Nodes_and_operator_text()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(["198.18.1.1"], Addresses(Query.Ask(p, "n1.node.eru", DnsType.A)));
        var txt = Assert.IsType<TxtRecord>(Assert.Single(Query.Ask(p, "n1.node.eru", DnsType.TXT).AnswerRecords));
        Assert.Contains("alive=yes", txt.TextParts);
        var svc = Assert.IsType<TxtRecord>(Assert.Single(Query.Ask(p, "web.shop.eru", DnsType.TXT).AnswerRecords));
        Assert.Contains("live=3", svc.TextParts);
    }

    [Fact]
    public void NXDOMAIN_and_NODATA_both_carry_the_SOA_with_the_negative_ttl()
    {
        Cluster();
        var p = Processor();
        var nx = Query.Ask(p, "nothing.shop.eru", DnsType.A);
        Assert.Equal(ReturnCode.NxDomain, nx.ReturnCode);
        Assert.True(nx.IsAuthoritiveAnswer);
        var soa = Assert.IsType<SoaRecord>(Assert.Single(nx.AuthorityRecords));
        Assert.Equal("eru.", soa.Name.ToString());
        Assert.Equal(5, soa.NegativeCachingTTL);
        Assert.Equal((uint)_snapshot.Revision, soa.SerialNumber);

        var nodata = Query.Ask(p, "web.shop.eru", DnsType.AAAA);
        Assert.Equal(ReturnCode.NoError, nodata.ReturnCode);
        Assert.Empty(nodata.AnswerRecords);
        Assert.IsType<SoaRecord>(Assert.Single(nodata.AuthorityRecords));
        // An app is an empty non-terminal: it exists (NODATA), it is not NXDOMAIN (RFC 8020).
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "shop.eru", DnsType.A).ReturnCode);
    }

    [Fact]
    public void A_service_with_no_live_instance_is_NXDOMAIN_by_default_and_NODATA_when_configured()
    {
        Cluster();
        Registry(RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("aaaa01", healthy: false), 1),
            RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("bbbb02", healthy: false), 1),
            RegistryChange.Delete(Kinds.WorkloadStatus, "cccc03"));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(Processor(), "web.shop.eru", DnsType.A).ReturnCode);

        _options.Zones = [new ZoneOptions { EmptyService = EmptyServiceAnswer.NoData }];
        _table = DnsTableBuilder.Build(_options, _snapshot, null);
        var m = Query.Ask(Processor(), "web.shop.eru", DnsType.A);
        Assert.Equal(ReturnCode.NoError, m.ReturnCode);
        Assert.Empty(m.AnswerRecords);
    }

    [Fact]
    public void Health_changes_are_reflected_in_the_next_table()
    {
        Cluster();
        var p = Processor();
        Registry(RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("bbbb02", healthy: false), 1));
        Assert.Equal(["198.18.16.1", "198.18.16.3"], Addresses(Query.Ask(p, "web.shop.eru", DnsType.A)));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "bbbb02.web.shop.eru", DnsType.A).ReturnCode);
        Registry(RegistryChange.Delete(Kinds.NodeStatus, "n1")); // the node's lease expired
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "web.shop.eru", DnsType.A).ReturnCode);
    }

    [Fact]
    public void The_query_name_is_echoed_in_its_original_case()
    {
        Cluster();
        var raw = Query.Raw(Processor(), Query.Build("WeB.ShOp.ERU", DnsType.A));
        var m = Query.Parse(raw);
        Assert.Equal("WeB.ShOp.ERU.", m.Questions[0].Name.ToString());
        Assert.Equal(3, m.AnswerRecords.Count);
        Assert.Equal(0x1234, Query.Id(raw));
    }

    [Fact]
    public void Apex_has_SOA_and_NS_with_glue_and_ANY_is_minimal()
    {
        Cluster();
        var p = Processor();
        Assert.IsType<SoaRecord>(Assert.Single(Query.Ask(p, "eru", DnsType.SOA).AnswerRecords));
        var ns = Query.Ask(p, "eru", DnsType.NS);
        Assert.Equal("ns1.eru.", Assert.IsType<NsRecord>(Assert.Single(ns.AnswerRecords)).NameServer.ToString());
        Assert.Equal("127.0.0.1", Assert.Single(ns.AdditionalRecords.OfType<ARecord>()).Address.ToString());
        var any = Query.Ask(p, "web.shop.eru", DnsType.ANY);
        Assert.All(any.AnswerRecords, r => Assert.Equal(RecordType.A, r.RecordType)); // one RRset, not everything (RFC 8482)
    }

    [Fact]
    public void Every_workload_address_has_a_PTR()
    {
        Cluster();
        var p = Processor();
        var m = Query.Ask(p, "2.16.18.198.in-addr.arpa", DnsType.PTR);
        Assert.Equal("bbbb02.web.shop.eru.", Assert.IsType<PtrRecord>(Assert.Single(m.AnswerRecords)).PointerDomainName.ToString());
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "9.16.18.198.in-addr.arpa", DnsType.PTR).ReturnCode);
        Assert.IsType<SoaRecord>(Assert.Single(Query.Ask(p, "18.198.in-addr.arpa", DnsType.SOA).AnswerRecords));
        Assert.Equal(ReturnCode.Refused, Query.Ask(p, "1.0.0.10.in-addr.arpa", DnsType.PTR).ReturnCode);
        // Names on the way exist only where live addresses lie below them.
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "16.18.198.in-addr.arpa", DnsType.PTR).ReturnCode);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "17.18.198.in-addr.arpa", DnsType.PTR).ReturnCode);
    }

    [Fact]
    public void Large_answers_are_truncated_over_UDP_and_whole_over_TCP()
    {
        Registry([RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
            .. Enumerable.Range(1, 200).SelectMany(i => Live($"w{i:D4}", $"198.18.{16 + i / 250}.{i % 250}", app: "big"))]);
        var p = Processor();
        var udp = Query.Raw(p, Query.Build("web.big.eru", DnsType.A, ednsSize: 4096));
        Assert.True(udp.Length <= 1232, $"UDP response of {udp.Length} bytes is over 1232");
        var m = Query.Parse(udp);
        Assert.True(m.IsTruncated);
        Assert.Empty(m.AnswerRecords);
        Assert.Equal(1232, m.EDnsOptions!.UdpPayloadSize); // our size, not the client's 4096

        var plain = Query.Raw(p, Query.Build("web.big.eru", DnsType.A, ednsSize: null));
        Assert.True(plain.Length <= 512);
        Assert.True(Query.Parse(plain).IsTruncated);

        var tcp = Query.Parse(Query.Raw(p, Query.Build("web.big.eru", DnsType.A), tcp: true));
        Assert.False(tcp.IsTruncated);
        Assert.Equal(200, tcp.AnswerRecords.Count);
    }

    [Fact]
    public void EDNS_version_1_gets_BADVERS_and_unknown_options_are_ignored()
    {
        Cluster();
        var p = Processor();
        var bad = Query.Parse(Query.Raw(p, Query.Build("web.shop.eru", DnsType.A, ednsVersion: 1)));
        Assert.Equal(ReturnCode.BadVersion, bad.ReturnCode);
        Assert.Equal(0, bad.EDnsOptions!.Version);
        Assert.Empty(bad.AnswerRecords);

        // An unknown option (code 65001) and the DO bit: answered normally, DO copied into the answer (RFC 3225 3).
        var withOption = Query.Parse(Query.Raw(p, Query.Build("web.shop.eru", DnsType.A, ednsOption: [0xFD, 0xE9, 0, 2, 1, 2])));
        Assert.Equal(ReturnCode.NoError, withOption.ReturnCode);
        Assert.Equal(3, withOption.AnswerRecords.Count);
        Assert.True(withOption.IsDnsSecOk);
        Assert.False(Query.Parse(Query.Raw(p, Query.Build("web.shop.eru", DnsType.A, dnssecOk: false))).IsDnsSecOk);
    }

    [Theory]
    [InlineData(new byte[] { 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 0x61 })]            // name runs off the end
    [InlineData(new byte[] { 0x12, 0x34, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1 })]        // QDCOUNT 2
    [InlineData(new byte[] { 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1 })] // a pointer loop
    [InlineData(new byte[] { 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x72, 0x75, 0, 0, 1 })] // no class
    public void Malformed_queries_get_FORMERR_with_their_id(byte[] packet)
    {
        Cluster();
        var raw = Query.Raw(Processor(), packet);
        Assert.Equal(DnsRcode.FormErr, Query.Rcode(raw));
        Assert.Equal(0x1234, Query.Id(raw));
        Assert.True((raw[2] & 0x80) != 0);
    }

    [Fact]
    public void Garbage_never_crashes_and_short_packets_or_responses_get_no_answer()
    {
        Cluster();
        var p = Processor();
        var rnd = new Random(7);
        for (var i = 0; i < 5000; i++)
        {
            var junk = new byte[rnd.Next(0, 600)];
            rnd.NextBytes(junk);
            var buffer = new byte[DnsLimits.MaxMessage];
            var outcome = p.Process(junk, buffer, tcp: rnd.Next(2) == 0);
            Assert.True(outcome.Length is 0 or >= 12);
        }
        Assert.True(p.Process(new byte[11], new byte[DnsLimits.MaxMessage], false).Dropped);
        var response = Query.Build("web.shop.eru", DnsType.A);
        response[2] |= 0x80;
        Assert.True(p.Process(response, new byte[DnsLimits.MaxMessage], false).Dropped);
    }

    [Fact]
    public void Unknown_opcodes_get_NOTIMP_other_zones_and_classes_REFUSED()
    {
        Cluster();
        var p = Processor();
        Assert.Equal(DnsRcode.NotImp, Query.Rcode(Query.Raw(p, Query.Build("web.shop.eru", DnsType.A, opcode: 5))));
        Assert.Equal(DnsRcode.NotImp, Query.Rcode(Query.Raw(p, Query.Build("web.shop.eru", DnsType.A, opcode: 2))));
        Assert.Equal(ReturnCode.Refused, Query.Ask(p, "example.com", DnsType.A).ReturnCode);
        Assert.Equal(DnsRcode.Refused, Query.Rcode(Query.Raw(p, Query.Build("version.bind", DnsType.TXT, qclass: 3))));
        Assert.Equal(ReturnCode.Refused, Query.Ask(p, "eru", DnsType.AXFR, tcp: true).ReturnCode);
    }

    [Fact]
    public void Static_records_from_the_registry_are_served_and_take_precedence()
    {
        Cluster();
        Registry(RegistryChange.Put(Kinds.DnsRecords, new DnsRecordSet
        {
            Name = "db.eru",
            Records =
            [
                new StaticDnsRecord { Type = "A", Value = "198.18.0.5", Ttl = 60 },
                new StaticDnsRecord { Type = "TXT", Value = "primary" },
                new StaticDnsRecord { Type = "MX", Value = "10 mail.example.org" },
            ],
        }), RegistryChange.Put(Kinds.DnsRecords, new DnsRecordSet
        {
            Name = "_pg._tcp.db.eru",
            Records = [new StaticDnsRecord { Type = "SRV", Value = "1 1 5432 db.eru" }],
        }), RegistryChange.Put(Kinds.DnsRecords, new DnsRecordSet
        {
            Name = "web.shop.eru", Records = [new StaticDnsRecord { Type = "A", Value = "192.0.2.1" }],
        }));
        var p = Processor();
        var a = Query.Ask(p, "db.eru", DnsType.A);
        Assert.Equal(["198.18.0.5"], Addresses(a));
        Assert.Equal(60, a.AnswerRecords[0].TimeToLive);
        Assert.Equal("primary", Assert.IsType<TxtRecord>(Assert.Single(Query.Ask(p, "DB.eru", DnsType.TXT).AnswerRecords)).TextData);
        var mx = Assert.IsType<MxRecord>(Assert.Single(Query.Ask(p, "db.eru", DnsType.MX).AnswerRecords));
        Assert.Equal("mail.example.org.", mx.ExchangeDomainName.ToString());
        Assert.Equal(5432, Assert.IsType<SrvRecord>(Assert.Single(Query.Ask(p, "_pg._tcp.db.eru", DnsType.SRV).AnswerRecords)).Port);
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "_tcp.db.eru", DnsType.A).ReturnCode); // on the way: exists, no data
        Assert.Equal(["192.0.2.1"], Addresses(Query.Ask(p, "web.shop.eru", DnsType.A))); // an operator's override wins
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "db.eru", DnsType.AAAA).ReturnCode);

        Registry(RegistryChange.Delete(Kinds.DnsRecords, "db.eru"), RegistryChange.Delete(Kinds.DnsRecords, "web.shop.eru"));
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "db.eru", DnsType.A).ReturnCode); // still on the way to _pg._tcp.db.eru
        Assert.Empty(Query.Ask(p, "db.eru", DnsType.A).AnswerRecords);
        Assert.Equal(3, Query.Ask(p, "web.shop.eru", DnsType.A).AnswerRecords.Count);
    }

    [Fact]
    public void The_hot_path_allocates_nothing()
    {
        Cluster();
        var p = Processor();
        var queries = new[] { Query.Build("web.shop.eru", DnsType.A), Query.Build("_http._tcp.web.shop.eru", DnsType.SRV),
            Query.Build("nope.shop.eru", DnsType.A), Query.Build("v1.web.shop.eru", DnsType.A),
            Query.Build("1.16.18.198.in-addr.arpa", DnsType.PTR) };
        var buffer = new byte[DnsLimits.MaxMessage];
        foreach (var q in queries) p.Process(q, buffer, false); // warm up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
            foreach (var q in queries) p.Process(q, buffer, false);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
