using System.Net;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Routing;

namespace EdgeEru.Lb.Proxy;

/// <summary>A request as the rule graph sees it.</summary>
internal readonly struct HttpRequestFacts(HttpContext context) : IRequestFacts
{
    public string Method => context.Request.Method;
    public string Path => context.Request.Path.Value ?? "/";

    public string? Header(string name) => context.Request.Headers.TryGetValue(name, out var v) ? v.ToString() : null;
    public string? Query(string name) => context.Request.Query.TryGetValue(name, out var v) ? v.ToString() : null;
    // Without a Cookie header there is no cookie, and no cookie collection needs to be made for this request.
    public string? Cookie(string name) => context.Request.Headers.Cookie.Count == 0 ? null : context.Request.Cookies[name];

    public IPAddress ClientAddress(IReadOnlyList<IPNetwork> trustedProxies) =>
        TrustedProxies.Client(context.Connection.RemoteIpAddress ?? IPAddress.None, trustedProxies, context,
            static c => c.Request.Headers[ForwardedHeaders.For].ToString());
}
