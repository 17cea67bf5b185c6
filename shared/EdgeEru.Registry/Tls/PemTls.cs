using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace EdgeEru.Registry.Tls;

/// <summary>
/// TLS from PEM files, the one way every EdgeEru client and server uses them (etcd, Docker engines,
/// Core's API and its CLI): a certificate with its key, and trust in private CAs only.
/// </summary>
public static class PemTls
{
    /// <summary>
    /// A PEM certificate (chain) and its PEM key, re-imported: a PEM key is ephemeral and SslStream needs one it can keep using.
    /// </summary>
    public static X509Certificate2 LoadCertificate(string certPath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The CA certificates of a PEM file; <paramref name="setting"/> names it when it holds none.</summary>
    public static X509Certificate2Collection LoadRoots(string path, string setting)
    {
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(path);
        return roots.Count > 0 ? roots : throw new ArgumentException($"{setting}: \"{path}\" holds no PEM certificate");
    }

    /// <summary>
    /// Accepts a peer whose certificate names it (host or IP, as usual) and chains to one of
    /// <paramref name="roots"/>; the system's store is not asked.
    /// </summary>
    public static RemoteCertificateValidationCallback TrustOnly(X509Certificate2Collection roots) => (_, certificate, _, errors) =>
    {
        if (certificate is null
            || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    };
}
