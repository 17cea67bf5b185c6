using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Dns.Tables;

/// <summary>
/// Everything the server answers, built from one registry snapshot: pre-encoded record sets per name.
/// Rebuilt on every snapshot, but only for the services whose live workloads changed.
/// </summary>
internal sealed class DnsTable
{
    /// <summary>The local datacenter's snapshot.</summary>
    public required RegistrySnapshot Snapshot { get; init; }

    /// <summary>Other datacenters' snapshots it was built with, in failover order (docs/multi-dc.md).</summary>
    public IReadOnlyList<Registry.Watch.DatacenterSnapshot> Remotes { get; init; } = [];
    public required ZoneAnswers[] Zones { get; init; }
    public required ReverseZone[] Reverse { get; init; }
}

internal sealed class ZoneAnswers
{
    public required ZoneOptions Options { get; init; }
    public required byte[] Apex { get; init; }
    public required int ApexLabels { get; init; }
    /// <summary>SOA without owner: appended after a pointer to the apex inside the question.</summary>
    public required byte[] SoaTail { get; init; }
    public required RRset Ns { get; init; }
    public required LayeredMap<ServiceAnswers> Services { get; init; }

    /// <summary>The services of <see cref="Source"/> alone (the next build starts from them); in the main zone of several
    /// datacenters, <see cref="Services"/> adds the others' where the local one has none live.</summary>
    public required LayeredMap<ServiceAnswers> LocalServices { get; init; }

    /// <summary>The snapshot this zone was built from: the local one, or another datacenter's for <c>{dc}.{zone}</c>.</summary>
    public required RegistrySnapshot Source { get; init; }
    /// <summary>Apps with at least one service: <c>{app}.{zone}</c> exists with no data.</summary>
    public required LayeredMap<int> Apps { get; init; }
    public required Dictionary<string, NodeAnswers> Nodes { get; init; }
    /// <summary>Static records by name relative to the zone ("db", "x.y"), with the names on the way to them.</summary>
    public required Dictionary<string, StaticAnswers> Static { get; init; }
}

internal sealed class ReverseZone
{
    public required byte[] Apex { get; init; }
    public required int ApexLabels { get; init; }
    public required byte[] SoaTail { get; init; }
    public required uint Ttl { get; init; }
    /// <summary>Under ip6.arpa (names of nibbles), not in-addr.arpa (names of octets).</summary>
    public bool Ip6 { get; init; }
}
