using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EdgeEru.Dev;

/// <summary>The private CA of a rig's TLS server (an image registry, an ACME CA) and the certificate it signs.</summary>
public static class TestCertificates
{
    /// <summary>
    /// A CA named <paramref name="caName"/> and a server certificate it signed for <paramref name="ip"/> and
    /// <paramref name="dnsNames"/>, written to <c>dir/ca.crt</c>, <c>dir/server.crt</c>, <c>dir/server.key</c> (PEM),
    /// valid for two days; returns the CA, for clients to trust.
    /// </summary>
    public static X509Certificate2 WriteCaAndServer(string dir, string caName, IPAddress ip, params string[] dnsNames)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest($"CN={caName}", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={ip}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(ip);
        foreach (var name in dnsNames) san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // serverAuth
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var server = request.Create(ca, now.AddMinutes(-5), now.AddDays(2), RandomNumberGenerator.GetBytes(16));

        File.WriteAllText(Path.Combine(dir, "ca.crt"), ca.ExportCertificatePem() + "\n");
        File.WriteAllText(Path.Combine(dir, "server.crt"), server.ExportCertificatePem() + "\n");
        File.WriteAllText(Path.Combine(dir, "server.key"), key.ExportPkcs8PrivateKeyPem() + "\n");
        return ca;
    }
}
