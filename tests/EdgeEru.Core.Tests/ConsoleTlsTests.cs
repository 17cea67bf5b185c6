using System.Net;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>The console over TLS with the API's certificate (tokens cross the network), and h2c-only Core:Urls untouched.</summary>
public sealed class ConsoleTlsTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-console-tls-").FullName;

    [Fact]
    public async Task The_console_serves_https_with_the_apis_certificate()
    {
        using var ca = TestCertificates.WriteCaAndServer(_dir, "eru console test ca", IPAddress.Loopback);
        var console = $"https://127.0.0.1:{Ports.FreeTcp()}";
        await using var core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", EtcdFixture.NewPrefix(),
            "--Core:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Core:Token", "t0ken", "--Core:ConsoleUrls", console,
            "--Core:Tls:CertPath", Path.Combine(_dir, "server.crt"), "--Core:Tls:KeyPath", Path.Combine(_dir, "server.key"),
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await core.StartAsync();

        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return cert is not null && chain.Build(cert);
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Get, console + "/console/api/whoami");
        request.Headers.Authorization = new("Bearer", "t0ken");
        using var me = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, me.StatusCode);
        Assert.Contains("\"admin\"", await me.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Plain HTTP does not reach the TLS port.
        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() =>
            plain.GetAsync(new Uri(console.Replace("https://", "http://", StringComparison.Ordinal) + "/console")));
    }

    [Fact]
    public void An_https_console_without_a_certificate_is_refused_at_start_with_the_settings_named()
    {
        var ex = Assert.Throws<ArgumentException>(() => CoreHost.Create(["--Registry:Endpoints", etcd.Url,
            "--Core:Urls", "http://127.0.0.1:1", "--Core:ConsoleUrls", "https://127.0.0.1:3", "--Core:Token", "t",
            "--Http:Urls", "http://127.0.0.1:2"]));
        Assert.StartsWith("Core:ConsoleUrls has an https:// URL: set Core:Tls:CertPath", ex.Message, StringComparison.Ordinal);
        var bad = Assert.Throws<ArgumentException>(() => CoreHost.Create(["--Registry:Endpoints", etcd.Url,
            "--Core:Urls", "http://127.0.0.1:1", "--Core:ConsoleUrls", "console.local:80", "--Core:Token", "t"]));
        Assert.Contains("Core:ConsoleUrls", bad.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
