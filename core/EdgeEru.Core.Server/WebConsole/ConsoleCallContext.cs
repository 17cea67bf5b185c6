using Grpc.Core;

namespace EdgeEru.Core.Server.WebConsole;

/// <summary>
/// A console request as the service's handlers and the <see cref="AuthInterceptor"/> see a gRPC call: the method it
/// stands for, the caller's bearer token, its peer and its cancellation. So the JSON endpoints are let in, refused and
/// audited by the same code as the RPCs, and run the same handlers.
/// </summary>
internal sealed class ConsoleCallContext(HttpContext http, string method) : ServerCallContext
{
    private readonly Metadata _headers = Headers(http);

    private static Metadata Headers(HttpContext http)
    {
        var m = new Metadata();
        if (http.Request.Headers.Authorization.ToString() is { Length: > 0 } a) m.Add("authorization", a);
        return m;
    }

    protected override string MethodCore => method;
    protected override string HostCore => http.Request.Host.Value ?? "";

    // As gRPC says it (ipv4:127.0.0.1:5000), so that the audit log reads the same for both ways in.
    protected override string PeerCore => http.Connection.RemoteIpAddress switch
    {
        null => "unknown",
        { AddressFamily: System.Net.Sockets.AddressFamily.InterNetworkV6 } ip => $"ipv6:[{ip}]:{http.Connection.RemotePort}",
        var ip => $"ipv4:{ip}:{http.Connection.RemotePort}",
    };

    protected override DateTime DeadlineCore => DateTime.MaxValue;
    protected override Metadata RequestHeadersCore => _headers;
    protected override CancellationToken CancellationTokenCore => http.RequestAborted;
    protected override Metadata ResponseTrailersCore { get; } = [];
    protected override Status StatusCore { get; set; }
    protected override WriteOptions? WriteOptionsCore { get; set; }
    protected override AuthContext AuthContextCore { get; } = new(null, []);

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("console calls do not propagate");

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}
