using System.Net;
using System.Net.Sockets;
using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// The address pool of a routed Docker network (<c>ip-pools/{network}</c>), written by Core: the pool is cut into
/// blocks of <see cref="BlockSize"/>, each node that runs containers on the network owns one block, and its
/// containers' addresses come from that block. Hosts announce their blocks by BGP, so a container is reached through
/// its host by a route, never by a shared L2 segment (Calico's IPAM blocks and block affinities, in one value).
/// </summary>
public sealed record IpPool : IRegistryRecord
{
    public int V { get; set; } = 1;

    /// <summary>The Docker network's name on every node (a host-local network per node, one subnet: the node's block).</summary>
    public required string Network { get; init; }

    /// <summary>The pool, an IPv4 network in canonical form (e.g. <c>198.19.0.0/19</c>).</summary>
    public required string Cidr { get; init; }

    /// <summary>Prefix length of each block (26: 64 addresses, 61 for containers).</summary>
    public int BlockSize { get; init; } = 26;

    /// <summary>Node name → its block (a CIDR inside the pool). Kept while the node exists; freed when it is removed.</summary>
    public StringMap Blocks { get; set; } = StringMap.Empty;

    [JsonIgnore] public string KeyName => Network;

    /// <summary>Shortest and longest block prefix: a block must hold a gateway and at least one container.</summary>
    public const int MinBlockSize = 16, MaxBlockSize = 30;

    /// <summary>The pool as a network, or null when <see cref="Cidr"/> is not a canonical IPv4 CIDR.</summary>
    public static IPNetwork? ParseIPv4(string? cidr) =>
        cidr is not null && IPNetwork.TryParse(cidr, out var n) && n.BaseAddress.AddressFamily == AddressFamily.InterNetwork
        && n.ToString() == cidr ? n : null;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Network), $"ip pool network \"{Network}\" must be 1-253 of [A-Za-z0-9._-]");
        var pool = ParseIPv4(Cidr);
        Names.Require(e, pool is not null, $"ip pool {Network}: cidr \"{Cidr}\" is not an IPv4 network in canonical form (a.b.c.d/n)");
        Names.Require(e, BlockSize is >= MinBlockSize and <= MaxBlockSize,
            $"ip pool {Network}: block_size {BlockSize} must be between {MinBlockSize} and {MaxBlockSize}");
        if (pool is not { } p) return e;
        Names.Require(e, p.PrefixLength <= BlockSize, $"ip pool {Network}: block_size /{BlockSize} is larger than the pool {Cidr}");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (node, block) in Blocks)
        {
            Names.Require(e, Names.IsLabel(node), $"ip pool {Network}: node \"{node}\" must be a DNS label");
            var b = ParseIPv4(block);
            Names.Require(e, b is { } n && n.PrefixLength == BlockSize && p.Contains(n.BaseAddress),
                $"ip pool {Network}: block \"{block}\" of node {node} is not a /{BlockSize} inside {Cidr}");
            Names.Require(e, seen.Add(block), $"ip pool {Network}: block {block} is given to two nodes");
        }
        return e;
    }
}
