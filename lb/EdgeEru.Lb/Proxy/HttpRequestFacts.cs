using System.Net;
using EdgeEru.Lb.Routing;

namespace EdgeEru.Lb.Proxy;

/// <summary>A request as the rule graph sees it.</summary>
internal sealed class HttpRequestFacts(HttpContext context) : IRequestFacts
{
    public string Method => context.Request.Method;
    public string Path => context.Request.Path.Value ?? "/";

    public string? Header(string name) => context.Request.Headers.TryGetValue(name, out var v) ? v.ToString() : null;
    public string? Query(string name) => context.Request.Query.TryGetValue(name, out var v) ? v.ToString() : null;
    // Without a Cookie header there is no cookie, and no cookie collection needs to be made for this request.
    public string? Cookie(string name) => context.Request.Headers.Cookie.Count == 0 ? null : context.Request.Cookies[name];

    public IPAddress ClientAddress(IReadOnlyList<IPNetwork> trustedProxies) =>
        Client(context.Connection.RemoteIpAddress ?? IPAddress.None, trustedProxies, context, static c => c.Request.Headers[ForwardedHeaders.For].ToString());

    /// <summary>
    /// The client of a request from <paramref name="peer"/>: the peer, or when the peer is a trusted proxy, the
    /// X-Forwarded-For entry (read only then) that the first untrusted hop added.
    /// </summary>
    public static IPAddress Client<TState>(IPAddress peer, IReadOnlyList<IPNetwork> trustedProxies, TState state, Func<TState, string?> forwardedFor)
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
