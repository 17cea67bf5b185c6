using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Dev;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>
/// The registry over TLS with client certificates against a real etcd run as in production
/// (<c>--client-cert-auth</c>, auth enabled, one user per service named by its certificate's CN, roles on the prefix).
/// </summary>
public sealed class TlsTests : IAsyncLifetime
{
    private const string Prefix = "/eru-tls";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eru-tls-" + Guid.NewGuid().ToString("N")[..12]);
    private EtcdServer _etcd = null!;
    private string _https = "";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        using var ca = Authority("edgeeru test etcd CA");
        WritePem("ca", ca);
        using (var server = Issue(ca, "etcd", server: true)) WritePem("server", server);
        foreach (var user in new[] { "root", "eru-core", "eru-dns" })
            using (var client = Issue(ca, user, server: false)) WritePem(user, client);
        using (var other = Authority("some other CA")) WritePem("other-ca", other);

        // Plain http for set-up (auth is not on yet), https with client certificates for the services.
        var plainPort = Ports.FreeTcp();
        var tlsPort = Ports.FreeTcp();
        _https = $"https://127.0.0.1:{tlsPort}";
        var urls = $"http://127.0.0.1:{plainPort},{_https}";
        _etcd = await EtcdServer.StartAsync(new EtcdServerOptions
        {
            ClientPort = plainPort,
            ExtraArgs = ["--listen-client-urls", urls, "--advertise-client-urls", urls, "--cert-file", F("server.crt"),
                "--key-file", F("server.key"), "--client-cert-auth", "--trusted-ca-file", F("ca.crt")],
        });
        var etcdctl = Tools.Find("etcdctl", "etcd-client");
        async Task Ctl(params string[] args) =>
            await Shell.RunAsync(etcdctl, ["--endpoints", _etcd.ClientUrl, .. args],
                environment: new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
        await Ctl("user", "add", "root", "--no-password");
        await Ctl("user", "grant-role", "root", "root");
        await Ctl("role", "add", "eru-writer");
        await Ctl("role", "grant-permission", "eru-writer", "--prefix=true", "readwrite", Prefix + "/");
        await Ctl("role", "add", "eru-reader");
        await Ctl("role", "grant-permission", "eru-reader", "--prefix=true", "read", Prefix + "/");
        await Ctl("user", "add", "eru-core", "--no-password");
        await Ctl("user", "grant-role", "eru-core", "eru-writer");
        await Ctl("user", "add", "eru-dns", "--no-password");
        await Ctl("user", "grant-role", "eru-dns", "eru-reader");
        await Ctl("auth", "enable");
    }

    public async Task DisposeAsync()
    {
        await _etcd.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Each_service_is_the_etcd_user_its_certificate_names_with_that_users_roles()
    {
        using var core = Connect("eru-core");
        var coreStore = new RegistryStore(core);
        await coreStore.PutAsync(Kinds.Pods, new Pod { Name = "tls", Description = "over TLS" });

        using var dns = Connect("eru-dns");
        var dnsStore = new RegistryStore(dns);
        var read = await dnsStore.GetAsync(Kinds.Pods, "tls");
        Assert.Equal("over TLS", read?.Value.Description);

        // The reader role cannot write, and nobody can outside the prefix.
        var denied = await Assert.ThrowsAnyAsync<Exception>(() => dnsStore.PutAsync(Kinds.Pods, new Pod { Name = "nope" }));
        Assert.Contains("permission denied", denied.ToString(), StringComparison.OrdinalIgnoreCase);
        using var outside = new EtcdConnection(Options("eru-core", prefix: "/elsewhere"));
        var outsideDenied = await Assert.ThrowsAnyAsync<Exception>(
            () => new RegistryStore(outside).PutAsync(Kinds.Pods, new Pod { Name = "x" }));
        Assert.Contains("permission denied", outsideDenied.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Without_a_client_certificate_or_with_the_wrong_CA_nothing_gets_through()
    {
        var noCert = new RegistryOptions
        {
            Endpoints = _https, Prefix = Prefix, TlsCa = F("ca.crt"), RequestTimeout = TimeSpan.FromSeconds(3),
        };
        using (var c = new EtcdConnection(noCert))
            await Assert.ThrowsAnyAsync<Exception>(() => new RegistryStore(c).GetAsync(Kinds.Pods, "tls"));

        var wrongCa = Options("eru-core");
        wrongCa.TlsCa = F("other-ca.crt");
        using (var c = new EtcdConnection(wrongCa))
            await Assert.ThrowsAnyAsync<Exception>(() => new RegistryStore(c).GetAsync(Kinds.Pods, "tls"));
    }

    [Fact]
    public void Tls_settings_are_checked_with_a_clear_error()
    {
        var http = new RegistryOptions { Endpoints = "http://127.0.0.1:2379", TlsCert = F("eru-core.crt"), TlsKey = F("eru-core.key") };
        Assert.Contains("is not https:// but Registry:TlsCa/TlsCert/TlsKey are set",
            Assert.Throws<ArgumentException>(() => http.ParseEndpoints()).Message, StringComparison.Ordinal);
        var noKey = new RegistryOptions { Endpoints = _https, TlsCert = F("eru-core.crt") };
        Assert.Contains("Registry:TlsCert and Registry:TlsKey go together",
            Assert.Throws<ArgumentException>(() => noKey.ParseEndpoints()).Message, StringComparison.Ordinal);
        var missing = new RegistryOptions { Endpoints = _https, TlsCa = F("nope.crt") };
        Assert.Contains("Registry:TlsCa: file",
            Assert.Throws<ArgumentException>(() => missing.ParseEndpoints()).Message, StringComparison.Ordinal);
    }

    private EtcdConnection Connect(string user) => new(Options(user));

    private RegistryOptions Options(string user, string prefix = Prefix) => new()
    {
        Endpoints = _https, Prefix = prefix, TlsCa = F("ca.crt"), TlsCert = F(user + ".crt"), TlsKey = F(user + ".key"),
        RequestTimeout = TimeSpan.FromSeconds(5),
    };

    private string F(string name) => Path.Combine(_dir, name);

    private void WritePem(string name, X509Certificate2 cert)
    {
        File.WriteAllText(F(name + ".crt"), cert.ExportCertificatePem());
        File.WriteAllText(F(name + ".key"), cert.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
    }

    private static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        // Outlives every certificate it issues (a leaf may not end after its issuer).
        return req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string commonName, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(
            new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        // etcd's own client connections (e.g. its gateway) use the server certificate as a client one too.
        var usages = new OidCollection { new Oid("1.3.6.1.5.5.7.3.2") };
        if (server) usages.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            san.AddDnsName("localhost");
            req.CertificateExtensions.Add(san.Build());
        }
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var cert = req.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        return cert.CopyWithPrivateKey(key);
    }
}
