using ARSoft.Tools.Net.Dns;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Dns.Tests;

/// <summary>
/// Several datacenters in one table (docs/multi-dc.md), pure: the main zone answers the local datacenter while it has a
/// live instance and the next datacenter in failover order when it has none; <c>{dc}.eru</c> names one datacenter; SRV
/// lists every datacenter's instances, the others' at lower priority.
/// </summary>
public class MultiDatacenterTests
{
    private readonly DnsOptions _options = new();
    private RegistrySnapshot _dc1 = Named("dc1");
    private RegistrySnapshot _dc2 = Named("dc2");
    private RegistrySnapshot _dc3 = Named("dc3");
    private DnsTable? _table;

    private QueryProcessor Processor() => new(() => _table);

    private static RegistrySnapshot Named(string dc) => RegistrySnapshot.Empty.Apply(
        [
            RegistryChange.Put(Kinds.Datacenters, new Datacenter { Name = dc }),
            RegistryChange.Put(Kinds.Nodes, Samples.Node("n1")),
            RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1")),
        ], 1);

    private void Build() => _table = DnsTableBuilder.Build(_options, _dc1, _table,
        [new DatacenterSnapshot("dc2", _dc2, true), new DatacenterSnapshot("dc3", _dc3, true)]);

    private static RegistrySnapshot With(RegistrySnapshot s, params RegistryChange[] changes) => s.Apply(changes, s.Revision + 1);

    private static RegistryChange[] Live(string id, string ip, bool healthy = true, string app = "shop") =>
    [
        RegistryChange.Put(Kinds.Workloads, Samples.Workload(id, app: app, ip: ip)),
        RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id, ip: ip, healthy: healthy), lease: 1),
    ];

    private static string[] A(DnsMessage m) => m.AnswerRecords.OfType<ARecord>().Select(a => a.Address.ToString()).Order().ToArray();

    [Fact]
    public void The_main_zone_answers_the_local_datacenter_and_each_datacenter_has_its_own_zone()
    {
        _dc1 = With(_dc1, [.. Live("aaaa01", "198.18.1.1"), .. Live("aaaa02", "198.18.1.2")]);
        _dc2 = With(_dc2, Live("bbbb01", "198.19.1.1"));
        Build();
        var p = Processor();
        Assert.Equal(["198.18.1.1", "198.18.1.2"], A(Query.Ask(p, "web.shop.eru", DnsType.A)));
        Assert.Equal(["198.18.1.1", "198.18.1.2"], A(Query.Ask(p, "web.shop.dc1.eru", DnsType.A)));
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "web.shop.dc2.eru", DnsType.A)));
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "bbbb01.web.shop.dc2.eru", DnsType.A)));
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(p, "web.shop.dc3.eru", DnsType.A).ReturnCode);
        var soa = Assert.IsType<SoaRecord>(Assert.Single(Query.Ask(p, "web.shop.dc3.eru", DnsType.A).AuthorityRecords));
        Assert.Equal("dc3.eru.", soa.Name.ToString());
    }

    [Fact]
    public void With_no_live_local_instance_the_next_datacenter_in_order_answers_and_the_local_one_takes_over_again()
    {
        _dc1 = With(_dc1, Live("aaaa01", "198.18.1.1", healthy: false)); // recorded, not live
        _dc2 = With(_dc2, Live("bbbb01", "198.19.1.1"));
        _dc3 = With(_dc3, Live("cccc01", "198.20.1.1"));
        Build();
        var p = Processor();
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "web.shop.eru", DnsType.A)));
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "v1.web.shop.eru", DnsType.A))); // tags and idents follow
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "bbbb01.web.shop.eru", DnsType.A)));

        _dc2 = With(_dc2, RegistryChange.Delete(Kinds.WorkloadStatus, "bbbb01")); // dc2 has none left: dc3, the next
        Build();
        Assert.Equal(["198.20.1.1"], A(Query.Ask(p, "web.shop.eru", DnsType.A)));

        _dc1 = With(_dc1, RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status("aaaa01", ip: "198.18.1.1"), lease: 1));
        Build();
        Assert.Equal(["198.18.1.1"], A(Query.Ask(p, "web.shop.eru", DnsType.A)));
    }

    [Fact]
    public void SRV_lists_every_datacenters_instances_with_the_others_at_lower_priority_and_their_targets_resolve()
    {
        _dc1 = With(_dc1, Live("aaaa01", "198.18.1.1"));
        _dc2 = With(_dc2, Live("bbbb01", "198.19.1.1"));
        _dc3 = With(_dc3, Live("cccc01", "198.20.1.1"));
        Build();
        var p = Processor();
        var srv = Query.Ask(p, "_http._tcp.web.shop.eru", DnsType.SRV).AnswerRecords.OfType<SrvRecord>()
            .OrderBy(r => r.Priority).Select(r => (r.Priority, r.Target.ToString())).ToArray();
        Assert.Equal([(1, "aaaa01.web.shop.eru."), (101, "bbbb01.web.shop.dc2.eru."), (201, "cccc01.web.shop.dc3.eru.")], srv);
        Assert.Equal(["198.20.1.1"], A(Query.Ask(p, "cccc01.web.shop.dc3.eru", DnsType.A)));
    }

    [Fact]
    public void A_service_only_another_datacenter_has_exists_in_the_main_zone_and_a_remote_named_as_the_local_one_is_skipped()
    {
        _dc2 = With(_dc2, Live("bbbb01", "198.19.1.1"));
        Build();
        var p = Processor();
        Assert.Equal(["198.19.1.1"], A(Query.Ask(p, "web.shop.eru", DnsType.A)));
        Assert.Equal(ReturnCode.NoError, Query.Ask(p, "shop.eru", DnsType.A).ReturnCode); // the app exists, with no data

        _table = DnsTableBuilder.Build(_options, _dc1, null, [new DatacenterSnapshot("dc1", _dc2, true)]);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(Processor(), "web.shop.eru", DnsType.A).ReturnCode);
    }

    [Fact]
    public void A_rebuild_after_a_remote_change_reuses_the_local_services_and_drops_the_remote_ones_that_went()
    {
        _dc1 = With(_dc1, Live("aaaa01", "198.18.1.1"));
        _dc2 = With(_dc2, [.. Live("bbbb01", "198.19.1.1"), .. Live("dddd01", "198.19.2.1", app: "db")]);
        Build();
        var before = _table!.Zones.Single(z => z.Options.Normalized == "eru.");
        Assert.Equal(["198.19.2.1"], A(Query.Ask(Processor(), "web.db.eru", DnsType.A)));

        _dc2 = With(_dc2, RegistryChange.Delete(Kinds.WorkloadStatus, "dddd01"));
        Build();
        var after = _table!.Zones.Single(z => z.Options.Normalized == "eru.");
        Assert.Same(before.LocalServices["web.shop"], after.LocalServices["web.shop"]);
        Assert.Equal(ReturnCode.NxDomain, Query.Ask(Processor(), "web.db.eru", DnsType.A).ReturnCode);
    }
}
