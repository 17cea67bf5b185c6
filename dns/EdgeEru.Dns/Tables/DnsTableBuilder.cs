using System.Net;
using System.Net.Sockets;
using EdgeEru.Dns.Wire;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Dns.Tables;

/// <summary>Builds the tables from a registry snapshot, off the hot path: once per snapshot, reusing what did not change.</summary>
internal static class DnsTableBuilder
{
    /// <summary>
    /// The table for <paramref name="snapshot"/> (the local datacenter's) and, when a follower watches other datacenters,
    /// their <paramref name="remotes"/> in failover order: each datacenter gets its own zone <c>{dc}.{zone}</c> (listed
    /// first: a name is answered by the first zone it falls in), and the main zone answers a service from the local
    /// datacenter while it has a live instance, else from the first datacenter in order that has one.
    /// <paramref name="changedServices"/>: the services whose live group changed between <paramref name="previous"/>'s
    /// snapshot and this one, when the caller knows (it may have skipped snapshots); else the snapshot may say, or
    /// every service is compared.
    /// </summary>
    public static DnsTable Build(DnsOptions options, RegistrySnapshot snapshot, DnsTable? previous,
        IReadOnlyList<Registry.Watch.DatacenterSnapshot>? remotes = null, IReadOnlySet<ServiceKey>? changedServices = null)
    {
        remotes ??= [];
        var zones = options.EffectiveZones;
        var built = new List<ZoneAnswers>(zones.Count * (2 + remotes.Count));
        foreach (var zone in zones)
        {
            var others = new List<ZoneAnswers>(remotes.Count);
            if (snapshot.Datacenter is { } here)
                built.Add(Zone(DatacenterZone(zone, here), snapshot, previous, 0, changedServices));
            for (var r = 0; r < remotes.Count; r++)
            {
                if (remotes[r].Name == snapshot.Datacenter) continue; // configured as a remote, but it is this one
                others.Add(Zone(DatacenterZone(zone, remotes[r].Name), remotes[r].Snapshot, previous, (r + 1) * RemotePriorityStep,
                    null));
            }
            built.AddRange(others);
            var main = Zone(zone, snapshot, previous, 0, changedServices);
            built.Add(others.Count == 0 ? main : WithOtherDatacenters(main, others));
        }
        var serial = (uint)snapshot.Revision;
        var reverse = ReverseZones(options.ReverseSubnets).Select(apex =>
        {
            var ip6 = apex.EndsWith(".ip6.arpa.", StringComparison.Ordinal);
            var wire = DnsName.Encode(apex);
            var z = zones[0];
            return new ReverseZone
            {
                Apex = wire,
                ApexLabels = apex.TrimEnd('.').Split('.').Length,
                SoaTail = RRset.SoaTail(DnsName.Encode(z.EffectiveNameServers[0]), DnsName.Encode(z.EffectiveHostmaster), serial,
                    z.NegativeTtl, z.NegativeTtl),
                Ttl = z.Ttl,
                Ip6 = ip6,
            };
        }).ToArray();
        return new DnsTable { Snapshot = snapshot, Remotes = remotes, Zones = [.. built], Reverse = reverse };
    }

    /// <summary>
    /// What an SRV record of another datacenter's instance adds to its priority, times the datacenter's place in the
    /// failover order: clients that follow SRV priorities try every local instance first, then the next datacenter's.
    /// </summary>
    public const int RemotePriorityStep = 100;

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ZoneOptions, Dictionary<string, ZoneOptions>>
        DatacenterZones = [];

    /// <summary>
    /// <c>{dc}.{zone}</c>: the zone's settings under a datacenter's label, the same instance for the same pair (so a build
    /// finds its previous answers by reference). Its name servers are the parent zone's.
    /// </summary>
    private static ZoneOptions DatacenterZone(ZoneOptions zone, string datacenter)
    {
        var byName = DatacenterZones.GetOrCreateValue(zone);
        lock (byName)
        {
            if (byName.TryGetValue(datacenter, out var existing)) return existing;
            return byName[datacenter] = new ZoneOptions
            {
                Name = datacenter + "." + zone.Normalized, Network = zone.Network, Ttl = zone.Ttl, NegativeTtl = zone.NegativeTtl,
                EmptyService = zone.EmptyService, NameServers = [.. zone.EffectiveNameServers],
                NameServerAddress = zone.NameServerAddress, Hostmaster = zone.EffectiveHostmaster,
            };
        }
    }

    /// <summary>A zone's answers from <paramref name="snapshot"/>, reusing what the previous table built for the same zone.</summary>
    /// <param name="changedServices">Services changed since the previous table's local snapshot, if known.</param>
    private static ZoneAnswers Zone(ZoneOptions zone, RegistrySnapshot snapshot, DnsTable? previous, int priorityOffset,
        IReadOnlySet<ServiceKey>? changedServices)
    {
        ZoneAnswers? prev = null;
        foreach (var z in previous?.Zones ?? [])
            if (ReferenceEquals(z.Options, zone)) prev = z;
        var changed = prev is null ? null
            : ReferenceEquals(prev.Source, previous!.Snapshot) && changedServices is not null ? changedServices
            : snapshot.ChangedServicesSince(prev.Source);
        return BuildZone(zone, snapshot, prev, prev?.Source, priorityOffset, changed);
    }

    /// <summary>
    /// The main zone across datacenters: a service with a live local instance answers A, AAAA, TXT, tags and idents
    /// from the local datacenter; one without answers them from the first other datacenter (in failover order) that
    /// has a live instance. SRV always lists every datacenter's instances, the others' at lower priority.
    /// </summary>
    internal static ZoneAnswers WithOtherDatacenters(ZoneAnswers local, IReadOnlyList<ZoneAnswers> others)
    {
        var services = new Dictionary<string, ServiceAnswers>(local.Services, StringComparer.Ordinal);
        var apps = new Dictionary<string, int>(local.Apps, StringComparer.Ordinal);
        foreach (var key in others.SelectMany(o => o.Services.Select(s => s.Key)).Distinct(StringComparer.Ordinal))
        {
            var mine = local.Services.GetValueOrDefault(key);
            var theirs = others.Select(o => o.Services.GetValueOrDefault(key)).OfType<ServiceAnswers>().Where(s => !s.IsEmpty).ToList();
            if (theirs.Count == 0) continue;
            var serving = mine is { IsEmpty: false } ? mine : theirs[0];
            ServiceAnswers[] all = mine is null ? [.. theirs] : [mine, .. theirs];
            services[key] = new ServiceAnswers
            {
                A = serving.A, AAAA = serving.AAAA, Txt = serving.Txt, Below = serving.Below, Instances = serving.Instances,
                Srv = all.SelectMany(s => s.Srv.Keys).Distinct(StringComparer.Ordinal).ToDictionary(name => name, name =>
                {
                    var sets = all.Select(s => s.Srv.GetValueOrDefault(name)).OfType<RRset>().ToList();
                    return sets.Count == 1
                        ? sets[0]
                        : new RRset(DnsType.SRV, [.. sets.SelectMany(x => x.Records)], [.. sets.SelectMany(x => x.Additional)]);
                }, StringComparer.Ordinal),
                SrvProtocols = [.. all.SelectMany(s => s.SrvProtocols)],
            };
            var app = key[(key.IndexOf('.', StringComparison.Ordinal) + 1)..];
            if (mine is null) apps[app] = apps.GetValueOrDefault(app) + 1;
        }
        return new ZoneAnswers
        {
            Options = local.Options, Apex = local.Apex, ApexLabels = local.ApexLabels, SoaTail = local.SoaTail, Ns = local.Ns,
            Services = LayeredMap<ServiceAnswers>.Of(services), LocalServices = local.LocalServices, Source = local.Source,
            Apps = LayeredMap<int>.Of(apps), Nodes = local.Nodes,
            Static = local.Static,
        };
    }

    private static ZoneAnswers BuildZone(ZoneOptions zone, RegistrySnapshot snapshot, ZoneAnswers? prev, RegistrySnapshot? prevSnapshot,
        int priorityOffset, IReadOnlySet<ServiceKey>? changed)
    {
        var apex = DnsName.Encode(zone.Normalized);
        var mname = DnsName.Encode(zone.EffectiveNameServers[0]);
        var glueAddress = IPAddress.Parse(zone.NameServerAddress);
        var ns = new RRset(DnsType.NS,
            [.. zone.EffectiveNameServers.Select(n => RRset.NameRecord(DnsType.NS, DnsName.Encode(n), zone.Ttl))],
            [.. zone.EffectiveNameServers
                .Where(n => n.TrimEnd('.').EndsWith(zone.Normalized.TrimEnd('.'), StringComparison.OrdinalIgnoreCase))
                .Select(n => RRset.AddressRecord(DnsName.Encode(n), glueAddress, zone.Ttl))]);

        // Services: rebuild only those whose group of live workloads is not the very same as before.
        LayeredMap<ServiceAnswers> services;
        LayeredMap<int> apps;
        if (prev is not null && changed is not null && zone.EmptyService != EmptyServiceAnswer.NoData)
        {
            // The registry said which services changed: the others are neither compared nor copied (O(changes)).
            var edits = new List<(string Key, bool Present, ServiceAnswers Value)>(changed.Count);
            var appEdits = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var key in changed)
            {
                var name = Key(key);
                var had = prev.LocalServices.ContainsKey(name);
                var has = snapshot.LiveByService.TryGetValue(key, out var group);
                edits.Add((name, has, has ? BuildService(key, group, zone, priorityOffset) : null!));
                if (had == has) continue;
                var count = appEdits.TryGetValue(key.App, out var c) ? c : prev.Apps.GetValueOrDefault(key.App);
                appEdits[key.App] = count + (has ? 1 : -1);
            }
            services = prev.LocalServices.With(edits);
            apps = prev.Apps.With(appEdits.Select(kv => (kv.Key, kv.Value > 0, kv.Value)));
        }
        else
        {
            var all = Services(zone, snapshot, prev, prevSnapshot, priorityOffset);
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var key in all.Keys)
            {
                var app = key[(key.IndexOf('.', StringComparison.Ordinal) + 1)..];
                counts[app] = counts.GetValueOrDefault(app) + 1;
            }
            services = LayeredMap<ServiceAnswers>.Of(all);
            apps = LayeredMap<int>.Of(counts);
        }

        var nodes = prev is not null && prevSnapshot is not null && ReferenceEquals(prevSnapshot.Nodes, snapshot.Nodes)
            && ReferenceEquals(prevSnapshot.NodeStatuses, snapshot.NodeStatuses)
            && ReferenceEquals(prevSnapshot.LiveByNode, snapshot.LiveByNode)
            ? prev.Nodes
            : BuildNodes(snapshot, zone, prev, prevSnapshot);

        var statics = prev is not null && prevSnapshot is not null && ReferenceEquals(prevSnapshot.DnsRecords, snapshot.DnsRecords)
            ? prev.Static
            : BuildStatic(snapshot, zone);

        return new ZoneAnswers
        {
            Options = zone,
            Apex = apex,
            ApexLabels = zone.Normalized.TrimEnd('.').Split('.').Length,
            SoaTail = RRset.SoaTail(mname, DnsName.Encode(zone.EffectiveHostmaster), (uint)snapshot.Revision, zone.NegativeTtl,
                zone.NegativeTtl),
            Ns = ns,
            Services = services,
            LocalServices = services,
            Source = snapshot,
            Apps = apps,
            Nodes = nodes,
            Static = statics,
        };
    }

    /// <summary>Every service of a zone, as a new dictionary: built afresh, or compared service by service with the last.</summary>
    private static Dictionary<string, ServiceAnswers> Services(
        ZoneOptions zone, RegistrySnapshot snapshot, ZoneAnswers? prev, RegistrySnapshot? prevSnapshot, int priorityOffset)
    {
        Dictionary<string, ServiceAnswers> services;
        if (prev is null || prevSnapshot is null)
        {
            services = new(StringComparer.Ordinal);
            foreach (var (key, group) in snapshot.LiveByService) services[Key(key)] = BuildService(key, group, zone, priorityOffset);
        }
        else
        {
            services = new(prev.LocalServices, StringComparer.Ordinal);
            foreach (var (key, group) in snapshot.LiveByService)
                if (!prevSnapshot.LiveByService.TryGetValue(key, out var before) || !before.IsSameAs(group))
                    services[Key(key)] = BuildService(key, group, zone, priorityOffset);
            foreach (var key in prevSnapshot.LiveByService.Keys)
                if (!snapshot.LiveByService.ContainsKey(key)) services.Remove(Key(key));
        }
        if (zone.EmptyService == EmptyServiceAnswer.NoData)
        {
            foreach (var (key, s) in services.ToList())
                if (s.IsEmpty) services.Remove(key);
            foreach (var w in snapshot.Workloads)
                if (w.Record is { } r) services.TryAdd(r.Entrypoint + "." + r.App, new ServiceAnswers());
        }
        return services;
    }

    private static Dictionary<string, StaticAnswers> BuildStatic(RegistrySnapshot snapshot, ZoneOptions zone)
    {
        var result = new Dictionary<string, StaticAnswers>(StringComparer.Ordinal);
        var suffix = "." + zone.Normalized.TrimEnd('.');
        foreach (var (name, set) in snapshot.DnsRecords)
        {
            if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue; // another zone's
            var relative = name[..^suffix.Length];
            RRset? Of(string type, Func<StaticDnsRecord, byte[]> encode)
            {
                var records = set.Records.Where(r => r.Type == type).Select(encode).ToArray();
                var rrtype = type switch
                {
                    "A" => DnsType.A, "AAAA" => DnsType.AAAA, "TXT" => DnsType.TXT, "SRV" => DnsType.SRV, _ => DnsType.MX,
                };
                return records.Length == 0 ? null : new RRset(rrtype, records);
            }
            result[relative] = new StaticAnswers
            {
                A = Of("A", r => RRset.AddressRecord(null, IPAddress.Parse(r.Value), r.Ttl)),
                AAAA = Of("AAAA", r => RRset.AddressRecord(null, IPAddress.Parse(r.Value), r.Ttl)),
                Txt = Of("TXT", r => RRset.Txt([r.Value], r.Ttl)),
                Srv = Of("SRV", r =>
                {
                    var p = r.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return RRset.Srv(ushort.Parse(p[0]), ushort.Parse(p[1]), ushort.Parse(p[2]), DnsName.Encode(p[3]), r.Ttl);
                }),
                Mx = Of("MX", r =>
                {
                    var p = r.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return RRset.Mx(ushort.Parse(p[0]), DnsName.Encode(p[1]), r.Ttl);
                }),
            };
            // The names between the zone and a static name exist, with no data (RFC 8020).
            for (var dot = relative.IndexOf('.', StringComparison.Ordinal); dot >= 0; dot = relative.IndexOf('.', dot + 1))
                result.TryAdd(relative[(dot + 1)..], new StaticAnswers());
        }
        return result;
    }

    /// <summary>The key of a service in <see cref="ZoneAnswers.Services"/>: its name relative to the zone.</summary>
    public static string Key(ServiceKey key) => key.Entrypoint + "." + key.App;

    /// <summary>
    /// The addresses a zone serves for a workload, one per family: on its network, or the first one it has. An IPv6
    /// address in the IPv4 map (older writers allowed any address there) counts as the IPv6 one when there is no other.
    /// </summary>
    public static (IPAddress? V4, IPAddress? V6) AddressesOf(WorkloadView v, ZoneOptions zone)
    {
        string? text4, text6;
        if (zone.Network.Length > 0)
        {
            text4 = v.Address(zone.Network);
            text6 = v.Address6(zone.Network);
        }
        else
        {
            var all = v.Addresses();
            text4 = all.Count > 0 ? all[0].Address : null;
            text6 = v.FirstAddress6();
        }
        var v4 = text4 is not null && IPAddress.TryParse(text4, out var a) ? a : null;
        var v6 = text6 is not null && IPAddress.TryParse(text6, out var b) && b.AddressFamily == AddressFamily.InterNetworkV6 ? b : null;
        if (v4 is { AddressFamily: AddressFamily.InterNetworkV6 }) (v4, v6) = (null, v6 ?? v4);
        return (v4, v6);
    }

    private static ServiceAnswers BuildService(ServiceKey key, ViewSet group, ZoneOptions zone, int priorityOffset)
    {
        var ttl = zone.Ttl;
        var all = new List<(IPAddress, byte[])>(group.Count);
        var instances = 0;
        var byTag = new Dictionary<string, (List<(IPAddress Ip, byte[])> Addresses, int Instances)>(StringComparer.Ordinal);
        var below = new Dictionary<string, Subset>(StringComparer.Ordinal);
        var idents = new Dictionary<string, (IPAddress? V4, IPAddress? V6)>(StringComparer.Ordinal);
        var srv = new Dictionary<string, (List<byte[]> Records, List<byte[]> Additional)>(StringComparer.Ordinal);
        var protocols = new HashSet<string>(StringComparer.Ordinal);
        var suffix = "." + key.Entrypoint + "." + key.App + "." + zone.Normalized;
        foreach (var v in group)
        {
            var (v4, v6) = AddressesOf(v, zone);
            if (v4 is null && v6 is null) continue;
            var r = v.Record!;
            instances++;
            // One encoded record per address, shared by the service's set, its tags' and its own (the table's bulk).
            var a4 = v4 is null ? null : RRset.AddressRecord(null, v4, ttl);
            var a6 = v6 is null ? null : RRset.AddressRecord(null, v6, ttl);
            if (v4 is not null) all.Add((v4, a4!));
            if (v6 is not null) all.Add((v6, a6!));
            foreach (var tag in r.Tags)
            {
                if (!byTag.TryGetValue(tag, out var entry)) entry = ([], 0);
                var first = v4 ?? v6!;
                if (entry.Addresses.Exists(x => x.Ip.Equals(first))) continue; // a tag listed twice
                if (v4 is not null) entry.Addresses.Add((v4, a4!));
                if (v6 is not null) entry.Addresses.Add((v6, a6!));
                byTag[tag] = (entry.Addresses, entry.Instances + 1);
            }
            idents[r.Ident] = (v4, v6);
            var target = DnsName.Encode(r.Ident + suffix);
            foreach (var port in r.Ports)
            {
                var name = "_" + port.Name + "._" + port.Protocol;
                if (!srv.TryGetValue(name, out var set)) srv[name] = set = ([], []);
                var priority = (ushort)Math.Min(ushort.MaxValue, Label(r, "srv.priority", 1) + priorityOffset);
                set.Records.Add(RRset.Srv(priority, Label(r, "srv.weight", 1), (ushort)port.Port, target, ttl));
                // The target's addresses of both families: a dual-stack client needs no second query.
                if (v4 is not null) set.Additional.Add(RRset.AddressRecord(target, v4, ttl));
                if (v6 is not null) set.Additional.Add(RRset.AddressRecord(target, v6, ttl));
                protocols.Add("_" + port.Protocol);
            }
        }
        foreach (var (tag, entry) in byTag)
            if (!idents.ContainsKey(tag)) // an ident wins over an equal tag
                below[tag] = new Subset
                {
                    A = RRset.Addresses(entry.Addresses, DnsType.A), AAAA = RRset.Addresses(entry.Addresses, DnsType.AAAA),
                };
        var a = RRset.Addresses(all, DnsType.A);
        var aaaa = RRset.Addresses(all, DnsType.AAAA);
        return new ServiceAnswers
        {
            A = a,
            AAAA = aaaa,
            Instances = Instances(idents, all),
            Txt = instances == 0
                ? null
                : new RRset(DnsType.TXT,
                    [RRset.Txt([$"live={instances}", "tags=" + string.Join(",", byTag.Select(t => $"{t.Key}:{t.Value.Instances}"))],
                        ttl)]),
            Below = below,
            Srv = srv.ToDictionary(kv => kv.Key, kv => new RRset(DnsType.SRV, [.. kv.Value.Records], [.. kv.Value.Additional]),
                StringComparer.Ordinal),
            SrvProtocols = protocols,
        };
    }

    /// <summary>
    /// Each instance's place in its service's sets. The sets hold each address once, in the order of
    /// <paramref name="all"/>, per family; an instance sharing an address with another (an address being reused) points
    /// at that one record, which has its address.
    /// </summary>
    private static Dictionary<string, InstanceRecords> Instances(
        Dictionary<string, (IPAddress? V4, IPAddress? V6)> idents, List<(IPAddress Ip, byte[])> all)
    {
        var at = new Dictionary<IPAddress, int>(all.Count);
        int n4 = 0, n6 = 0;
        foreach (var (ip, _) in all)
            if (!at.ContainsKey(ip)) at[ip] = ip.AddressFamily == AddressFamily.InterNetwork ? n4++ : n6++;
        var instances = new Dictionary<string, InstanceRecords>(idents.Count, StringComparer.Ordinal);
        foreach (var (ident, (v4, v6)) in idents)
            instances[ident] = new InstanceRecords(v4 is null ? -1 : at[v4], v6 is null ? -1 : at[v6]);
        return instances;
    }

    private static ushort Label(Workload r, string key, ushort fallback) =>
        r.Labels.TryGetValue(key, out var v) && ushort.TryParse(v, out var n) ? n : fallback;

    /// <summary>Each node's names; a node whose record, liveness and live workloads are as before keeps its answers.</summary>
    private static Dictionary<string, NodeAnswers> BuildNodes(
        RegistrySnapshot snapshot, ZoneOptions zone, ZoneAnswers? prev, RegistrySnapshot? prevSnapshot)
    {
        var nodes = new Dictionary<string, NodeAnswers>(StringComparer.Ordinal);
        foreach (var (name, node) in snapshot.Nodes)
        {
            if (prev is not null && prevSnapshot is not null && prev.Nodes.TryGetValue(name, out var kept)
                && prevSnapshot.Nodes.TryGetValue(name, out var before) && ReferenceEquals(before, node)
                && prevSnapshot.IsNodeAlive(name) == snapshot.IsNodeAlive(name)
                && prevSnapshot.LiveOnNode(name).IsSameAs(snapshot.LiveOnNode(name)))
            {
                nodes[name] = kept;
                continue;
            }
            IPAddress? ip = node.Address is not null && IPAddress.TryParse(node.Address, out var parsed) ? parsed : null;
            IPAddress? ip6 = node.Address6 is not null && IPAddress.TryParse(node.Address6, out var parsed6) ? parsed6 : null;
            IPAddress[] addresses = ip is null ? ip6 is null ? [] : [ip6] : ip6 is null ? [ip] : [ip, ip6];
            var txt = RRset.Txt([$"pod={node.Pod}", $"alive={(snapshot.IsNodeAlive(name) ? "yes" : "no")}",
                $"live={snapshot.LiveOnNode(name).Count}",
                $"schedulable={(node.Unschedulable ? "no" : "yes")}"], zone.Ttl);
            nodes[name] = new NodeAnswers
            {
                A = RRset.Addresses(addresses, DnsType.A, zone.Ttl),
                AAAA = RRset.Addresses(addresses, DnsType.AAAA, zone.Ttl),
                Txt = new RRset(DnsType.TXT, [txt]),
            };
        }
        return nodes;
    }

    /// <summary>
    /// Reverse zones covering each subnet: octet-aligned under in-addr.arpa for IPv4 (a /15 gives two /16 zones),
    /// nibble-aligned under ip6.arpa for IPv6 (a /62 gives four /64 zones).
    /// </summary>
    public static IEnumerable<string> ReverseZones(IEnumerable<string> subnets)
    {
        var seen = new HashSet<string>();
        foreach (var s in subnets)
        {
            var net = IPNetwork.Parse(s);
            var zones = net.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? Ip6Zones(net) : Ip4Zones(net);
            foreach (var zone in zones)
                if (seen.Add(zone)) yield return zone;
        }
    }

    private static IEnumerable<string> Ip4Zones(IPNetwork net)
    {
        var octets = Math.Max(1, (net.PrefixLength + 7) / 8);
        var count = 1 << (octets * 8 - net.PrefixLength);
        var b = net.BaseAddress.GetAddressBytes();
        var start = (uint)((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]);
        for (var i = 0; i < Math.Min(count, 256); i++)
        {
            var addr = start + ((uint)i << (32 - octets * 8));
            var parts = Enumerable.Range(0, octets).Select(o => ((addr >> (24 - 8 * o)) & 0xff).ToString()).Reverse();
            yield return string.Join('.', parts) + ".in-addr.arpa.";
        }
    }

    private static IEnumerable<string> Ip6Zones(IPNetwork net)
    {
        var nibbles = (net.PrefixLength + 3) / 4;
        var count = 1 << (nibbles * 4 - net.PrefixLength); // 1 to 8
        var b = net.BaseAddress.GetAddressBytes();
        var fixedNibbles = new int[nibbles];
        for (var n = 0; n < nibbles; n++) fixedNibbles[n] = n % 2 == 0 ? b[n / 2] >> 4 : b[n / 2] & 0xf;
        for (var i = 0; i < count; i++)
        {
            var parts = (int[])fixedNibbles.Clone();
            if (nibbles > 0) parts[^1] |= i;
            yield return string.Join('.', parts.Reverse().Select(x => x.ToString("x"))) + ".ip6.arpa.";
        }
    }
}
