using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using EdgeEru.Lb.Tls;
using EdgeEru.Lb.Transport;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace EdgeEru.Lb;

/// <summary>Kestrel endpoints from URL lists (<c>;</c>-separated), plain or TLS-terminating.</summary>
internal static class Listeners
{
    public static HashSet<int> Ports(string urls) => Split(urls).Select(u => BindingAddress.Parse(u).Port).ToHashSet();

    /// <summary>
    /// Listens on every URL. With <paramref name="tls"/>, each handshake gets the certificate its SNI name
    /// selects (looked up per handshake, so reloaded certificates apply to new connections) and ALPN offers
    /// h2 and http/1.1. <paramref name="protocols"/> narrows the endpoint (HTTP/2 only for h2c).
    /// </summary>
    public static void Listen(KestrelServerOptions k, string urls, TlsCertificates? tls, HttpProtocols? protocols = null)
    {
        foreach (var url in Split(urls))
        {
            var a = BindingAddress.Parse(url);
            if (a.Scheme != (tls is null ? "http" : "https"))
                throw new ArgumentException($"listen URL \"{url}\" must start with {(tls is null ? "http" : "https")}:// here");
            Action<ListenOptions> configure = l =>
            {
                // Before TLS and HTTP, on either transport: Kestrel's request objects see an IPv4 client of a dual-stack
                // socket as IPv4 (the fast path does the same for its own connections).
                l.Use(next => connection =>
                {
                    connection.RemoteEndPoint = Peers.Plain(connection.RemoteEndPoint);
                    return next(connection);
                });
                if (protocols is { } p) l.Protocols = p;
                if (tls is not null) l.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = ctx => Handshake(tls, ctx) });
            };
            if (a.Host is "*" or "+" or "0.0.0.0" or "[::]") k.ListenAnyIP(a.Port, configure);
            else if (string.Equals(a.Host, "localhost", StringComparison.OrdinalIgnoreCase)) k.ListenLocalhost(a.Port, configure);
            else if (IPAddress.TryParse(a.Host.Trim('[', ']'), out var ip)) k.Listen(ip, a.Port, configure);
            else throw new ArgumentException($"listen URL \"{url}\": host must be an IP address, localhost or *");
        }
    }

    private static ValueTask<SslServerAuthenticationOptions> Handshake(TlsCertificates tls, TlsHandshakeCallbackContext ctx)
    {
        var cert = tls.Current.Select(ctx.ClientHelloInfo.ServerName)
            ?? throw new AuthenticationException($"no TLS certificate for \"{ctx.ClientHelloInfo.ServerName}\" and no default one");
        return ValueTask.FromResult(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = cert.Context,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
        });
    }

    private static string[] Split(string urls) => urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
