using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>eru-core's API over TLS (a private CA), through the real eru binary.</summary>
public sealed class CoreTlsTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-tls-").FullName;

    [Fact]
    public async Task The_api_serves_https_with_its_certificate_and_the_cli_trusts_the_given_ca()
    {
        var (caPem, certPem, keyPem) = WriteCertificates();
        var url = $"https://127.0.0.1:{Ports.FreeTcp()}";
        await using var core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", EtcdFixture.NewPrefix(),
            "--Core:Urls", url, "--Core:Token", "t0ken", "--Core:Tls:CertPath", certPem, "--Core:Tls:KeyPath", keyPem,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await core.StartAsync();

        var ok = await EruCli.RunAsync(output, "pod", "add", "tls-pod", "--core", url, "--token", "t0ken", "--core-ca", caPem);
        Assert.Equal(0, ok.Code);
        var ls = await EruCli.RunAsync(output, "pod", "ls", "--json", "--core", url, "--token", "t0ken", "--core-ca", caPem);
        Assert.Equal(0, ls.Code);
        Assert.Contains("tls-pod", ls.Output, StringComparison.Ordinal);

        // Without the CA the certificate is not trusted; plain h2c does not reach a TLS port.
        var untrusted = await EruCli.RunAsync(output, "pod", "ls", "--core", url, "--token", "t0ken");
        Assert.NotEqual(0, untrusted.Code);
        var plain = await EruCli.RunAsync(output, "pod", "ls", "--core", url.Replace("https://", "http://", StringComparison.Ordinal),
            "--token", "t0ken");
        Assert.NotEqual(0, plain.Code);
        var badCa = await EruCli.RunAsync(output, "pod", "ls", "--core", url, "--token", "t0ken",
            "--core-ca", Path.Combine(_dir, "missing.pem"));
        Assert.Equal(2, badCa.Code);
        Assert.Contains("--core-ca", badCa.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void An_https_url_without_a_certificate_is_refused_at_start_with_the_settings_named()
    {
        var ex = Assert.Throws<ArgumentException>(() => CoreHost.Create(["--Registry:Endpoints", etcd.Url,
            "--Core:Urls", "https://127.0.0.1:1",
            "--Core:Token", "t", "--Http:Urls", "http://127.0.0.1:2"]));
        Assert.Contains("Core:Tls:CertPath", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A CA and a server certificate for 127.0.0.1 signed by it, as PEM files.</summary>
    private (string Ca, string Cert, string Key) WriteCertificates()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caReq = new CertificateRequest("CN=eru test ca", caKey, HashAlgorithmName.SHA256);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        using var ca = caReq.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=eru-core", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = req.Create(ca, now.AddMinutes(-5), now.AddDays(1), RandomNumberGenerator.GetBytes(8));

        var paths = (Path.Combine(_dir, "ca.pem"), Path.Combine(_dir, "core.pem"), Path.Combine(_dir, "core.key"));
        File.WriteAllText(paths.Item1, ca.ExportCertificatePem());
        File.WriteAllText(paths.Item2, cert.ExportCertificatePem());
        File.WriteAllText(paths.Item3, key.ExportECPrivateKeyPem());
        return paths;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
