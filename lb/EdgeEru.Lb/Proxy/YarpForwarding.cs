using System.Runtime.CompilerServices;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using Yarp.ReverseProxy.Forwarder;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// How YARP forwards requests to one backend: built once per compiled backend, looked up only for requests that go through YARP.
/// </summary>
internal sealed class ForwardSettings(ForwarderRequestConfig config, EdgeTransformer transformer)
{
    private static readonly ConditionalWeakTable<BackendSettings, ForwardSettings> Cache = new();

    public ForwarderRequestConfig Config { get; } = config;
    public EdgeTransformer Transformer { get; } = transformer;

    public static ForwardSettings For(BackendSettings backend) => Cache.GetValue(backend, static b => new ForwardSettings(new()
    {
        // HTTP/1.1 to workloads unless the backend says h2c: then HTTP/2 with prior knowledge, nothing lower.
        ActivityTimeout = TimeSpan.FromMilliseconds(b.TimeoutMs),
        Version = b.Protocol == UpstreamProtocol.H2c ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11,
        VersionPolicy = b.Protocol == UpstreamProtocol.H2c
            ? HttpVersionPolicy.RequestVersionExact
            : HttpVersionPolicy.RequestVersionOrLower,
    }, new EdgeTransformer(b.Edits)));
}

/// <summary>
/// The LB's rules for a forwarded request's headers (those <see cref="Http1.UpstreamHead"/> writes for the HTTP/1.1
/// ways), applied to YARP's request message: the client's X-Forwarded-* replaced by the LB's (unless the backend
/// removes them), the workload's own address as Host, then the backend's header edits.
/// </summary>
internal sealed class EdgeTransformer(HeaderEdits edits) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest,
        string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        var headers = proxyRequest.Headers;
        foreach (var name in (ReadOnlySpan<string>)[ForwardedHeaders.For, ForwardedHeaders.Proto, ForwardedHeaders.Host])
            headers.Remove(name);
        var request = httpContext.Request;
        var prior = request.Headers[ForwardedHeaders.For];
        headers.TryAddWithoutValidation(ForwardedHeaders.For,
            ForwardedHeaders.ForValue(prior.Count == 0 ? null : prior.ToString(), httpContext.Connection.RemoteIpAddress?.ToString()));
        headers.TryAddWithoutValidation(ForwardedHeaders.Proto, request.Scheme);
        headers.TryAddWithoutValidation(ForwardedHeaders.Host, request.Host.Value);
        headers.Host = null; // the backend sees its own authority
        foreach (var name in edits.RemoveRequest) headers.Remove(name);
        foreach (var (name, value) in edits.SetRequest)
        {
            headers.Remove(name);
            headers.TryAddWithoutValidation(name, value);
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse,
        CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        foreach (var (name, value) in edits.SetResponse) httpContext.Response.Headers[name] = value;
        return result;
    }
}
