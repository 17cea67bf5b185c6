using System.Net;

namespace EdgeEru.Dns;

/// <summary>Configuration section "Dns" (appsettings, ERU_Dns__Port style env vars, --Dns:Port flags).</summary>
public sealed class DnsOptions
{
    public const string Section = "Dns";

    /// <summary>Address to listen on (UDP and TCP).</summary>
    public string Listen { get; set; } = "127.0.0.1";

    /// <summary>53 in production; a high port in dev and tests.</summary>
    public int Port { get; set; } = 5353;

    /// <summary>UDP receive loops (0: one per core).</summary>
    public int UdpLoops { get; set; }

    /// <summary>Idle TCP connections are closed after this long (RFC 7766 recommends seconds, not minutes).</summary>
    public TimeSpan TcpIdleTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public int MaxTcpConnections { get; set; } = 1000;

    public List<ZoneOptions> Zones { get; set; } = [];

    /// <summary>Names outside the zones: off unless upstreams are configured.</summary>
    public Forwarding.ForwardOptions Forward { get; set; } = new();

    /// <summary>Reverse zones: PTR records for workload addresses in these IPv4 and IPv6 subnets.</summary>
    public List<string> ReverseSubnets { get; set; } = [];

    private List<ZoneOptions>? _defaultZones;

    /// <summary>
    /// The configured zones, or the default <c>eru.</c> zone. The same instances every time: the table
    /// builder reuses a zone's previous answers only when its options are the very same object.
    /// </summary>
    public IReadOnlyList<ZoneOptions> EffectiveZones => Zones.Count > 0 ? Zones : _defaultZones ??= [new ZoneOptions()];

    /// <summary>Everything wrong with this configuration, named (empty when it is fine).</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (!IPAddress.TryParse(Listen, out _)) p.Add($"Dns:Listen \"{Listen}\" is not an IP address");
        if (Port is < 1 or > 65535) p.Add($"Dns:Port {Port} is outside 1-65535");
        if (UdpLoops is < 0 or > 64) p.Add($"Dns:UdpLoops {UdpLoops} is outside 0-64");
        var names = new HashSet<string>();
        foreach (var z in EffectiveZones)
        {
            foreach (var e in z.Problems()) p.Add($"Dns:Zones[{z.Name}]: {e}");
            if (!names.Add(z.Normalized)) p.Add($"Dns:Zones: zone {z.Name} appears twice");
        }
        p.AddRange(Forward.Problems());
        foreach (var s in ReverseSubnets)
        {
            if (!IPNetwork.TryParse(s, out var n)) p.Add($"Dns:ReverseSubnets: \"{s}\" is not an IPv4 or IPv6 CIDR subnet");
            // From /16 the first group is fixed: IPv6 names stay apart from IPv4 ones in the address index.
            else if (n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && n.PrefixLength is < 16 or > 124)
                p.Add($"Dns:ReverseSubnets: IPv6 subnet \"{s}\" must be /16 to /124");
        }
        return p;
    }
}

public enum EmptyServiceAnswer
{
    /// <summary>A service with no live instance does not exist (as Consul answers).</summary>
    NxDomain,

    /// <summary>A service with records but no live instance exists with no address (NOERROR, no data).</summary>
    NoData,
}

public sealed class ZoneOptions
{
    public string Name { get; set; } = "eru.";

    /// <summary>Docker network whose address is served; empty: the workload's first address.</summary>
    public string Network { get; set; } = "";

    /// <summary>TTL of service, instance and node answers, seconds.</summary>
    public uint Ttl { get; set; } = 5;

    /// <summary>SOA minimum: how long resolvers cache NXDOMAIN and NODATA, seconds.</summary>
    public uint NegativeTtl { get; set; } = 5;

    public EmptyServiceAnswer EmptyService { get; set; } = EmptyServiceAnswer.NxDomain;

    /// <summary>Name servers of the zone (NS at the apex), with the address served as their glue.</summary>
    public List<string> NameServers { get; set; } = [];

    public string NameServerAddress { get; set; } = "127.0.0.1";

    public string Hostmaster { get; set; } = "";

    public string Normalized => Name.TrimEnd('.').ToLowerInvariant() + ".";

    public IReadOnlyList<string> EffectiveNameServers => NameServers.Count > 0 ? NameServers : ["ns1." + Normalized];

    public string EffectiveHostmaster => Hostmaster.Length > 0 ? Hostmaster : "hostmaster." + Normalized;

    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        try
        {
            Wire.DnsName.Encode(Name);
            foreach (var ns in EffectiveNameServers) Wire.DnsName.Encode(ns);
            Wire.DnsName.Encode(EffectiveHostmaster);
        }
        catch (ArgumentException ex)
        {
            p.Add(ex.Message);
        }
        if (Name.Trim('.').Length == 0) p.Add("the root cannot be an EdgeEru zone");
        if (!IPAddress.TryParse(NameServerAddress, out _)) p.Add($"NameServerAddress \"{NameServerAddress}\" is not an IP address");
        if (Ttl > 86400) p.Add($"Ttl {Ttl} is over a day");
        if (NegativeTtl > 86400) p.Add($"NegativeTtl {NegativeTtl} is over a day");
        return p;
    }
}
