using Docker.DotNet;
using Docker.DotNet.X509;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Tls;

namespace EdgeEru.Docker;

/// <summary>How every EdgeEru service connects to a node's engine (Core, agent, SSH gateway): one place for TLS.</summary>
public static class DockerConnections
{
    /// <summary>
    /// A client configuration for <paramref name="endpoint"/>: <c>unix://</c> or plain <c>tcp://</c>, or with a
    /// client certificate for an engine behind <c>--tlsverify</c>. <paramref name="timeout"/> bounds each call
    /// (infinite for long attaches).
    /// </summary>
    public static DockerClientConfiguration Configure(DockerEndpoint endpoint, TimeSpan timeout)
    {
        var uri = new Uri(endpoint.Address);
        return endpoint.TlsCertPath is null
            ? new DockerClientConfiguration(uri, defaultTimeout: timeout)
            : new DockerClientConfiguration(uri, TlsCredentials(endpoint), timeout);
    }

    /// <summary>
    /// A client certificate (PEM cert + key); the engine's own certificate must name the engine and chain to
    /// the configured CA (a private CA: the system store is not consulted).
    /// </summary>
    private static CertificateCredentials TlsCredentials(DockerEndpoint endpoint)
    {
        if (endpoint.TlsKeyPath is null)
            throw new ArgumentException($"{endpoint.Address}: a TLS client certificate needs its key (tls_key_path)");
        var credentials = new CertificateCredentials(PemTls.LoadCertificate(endpoint.TlsCertPath!, endpoint.TlsKeyPath));
        // The engine's name (or IP) must be in its certificate, as with docker --tlsverify.
        if (endpoint.TlsCaPath is not null)
            credentials.ServerCertificateValidationCallback = PemTls.TrustOnly(PemTls.LoadRoots(endpoint.TlsCaPath, "tls_ca_path"));
        return credentials;
    }
}
