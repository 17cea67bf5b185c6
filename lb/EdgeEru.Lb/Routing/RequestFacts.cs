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
        if (peer.IsIPv4MappedToIPv6) peer = peer.MapToIPv4();
        if (trustedProxies.Count == 0 || !Trusted(peer, trustedProxies)) return peer;
        // Walk X-Forwarded-For from the right: the first address not added by a trusted proxy is the client.
        var xff = (forwardedFor(state) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        for (var i = xff.Length - 1; i >= 0; i--)
        {
            if (!IPAddress.TryParse(xff[i], out var hop)) return peer;
            if (!Trusted(hop, trustedProxies)) return hop;
            peer = hop;
        }
        return peer;
    }

    private static bool Trusted(IPAddress a, IReadOnlyList<IPNetwork> trusted)
    {
        foreach (var n in trusted)
            if (n.Contains(a)) return true;
        return false;
    }
}
