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
