using System.Net;

namespace EdgeEru.Lb.Routing;

/// <summary>What filters may look at in a request. The data plane reads it off HttpContext; tests build it by hand.</summary>
internal interface IRequestFacts
{
    string Method { get; }
    string Path { get; }
    string? Header(string name);
    string? Query(string name);
    string? Cookie(string name);

    /// <summary>The client: the peer, or the X-Forwarded-For entry a trusted proxy added.</summary>
    IPAddress ClientAddress(IReadOnlyList<IPNetwork> trustedProxies);
}

/// <summary>Who the client of a request is when proxies the domain trusts stand between it and the LB.</summary>
internal static class TrustedProxies
{
    /// <summary>
    /// The client of a request from <paramref name="peer"/>: the peer, or when the peer is a trusted proxy, the
    /// X-Forwarded-For entry (read only then) that the first untrusted hop added.
    /// </summary>
    public static IPAddress Client<TState>(IPAddress peer, IReadOnlyList<IPNetwork> trustedProxies, TState state,
        Func<TState, string?> forwardedFor)
    {
        peer = ClientNetworks.Plain(peer);
        if (trustedProxies.Count == 0 || !ClientNetworks.Contains(trustedProxies, peer)) return peer;
        // Walk X-Forwarded-For from the right: the first address not added by a trusted proxy is the client.
        var xff = (forwardedFor(state) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        for (var i = xff.Length - 1; i >= 0; i--)
        {
            if (!IPAddress.TryParse(xff[i], out var hop)) return peer;
            hop = ClientNetworks.Plain(hop);
            if (!ClientNetworks.Contains(trustedProxies, hop)) return hop;
            peer = hop;
        }
        return peer;
    }
}

/// <summary>
/// Client addresses against CIDR networks of either family (the ip filter, trusted proxies). An IPv4 client that
/// reached an IPv6 socket is seen as <c>::ffff:a.b.c.d</c>: it is matched as the IPv4 client it is, so one
/// <c>203.0.113.0/24</c> covers it on every listener.
/// </summary>
internal static class ClientNetworks
{
    /// <summary>The address as matched: an IPv4-mapped IPv6 address as IPv4, any other as it is (no copy).</summary>
    public static IPAddress Plain(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>
    /// A CIDR as <see cref="Contains"/> compares it: an IPv4-mapped IPv6 network (<c>::ffff:10.0.0.0/104</c>) becomes the
    /// IPv4 one it names (<c>10.0.0.0/8</c>), since clients are matched in their IPv4 form.
    /// </summary>
    public static IPNetwork Parse(string cidr)
    {
        var network = IPNetwork.Parse(cidr);
        return network.BaseAddress.IsIPv4MappedToIPv6 && network.PrefixLength >= 96
            ? new IPNetwork(network.BaseAddress.MapToIPv4(), network.PrefixLength - 96)
            : network;
    }

    /// <summary>Whether <paramref name="client"/> lies in one of <paramref name="networks"/> (never in one of the other family).</summary>
    public static bool Contains(IReadOnlyList<IPNetwork> networks, IPAddress client)
    {
        client = Plain(client);
        for (var i = 0; i < networks.Count; i++)
            if (networks[i].Contains(client)) return true;
        return false;
    }
}
