using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Crypto.Generators;

namespace EdgeEru.Dev;

/// <summary>
/// A real private image registry (Debian package docker-registry, Distribution v2) as a child process:
/// HTTPS with a certificate from a private CA made here, htpasswd auth with one user, storage in its own
/// temporary directory. It listens on one address (for a rig: <see cref="DockerRig.BridgeAddress"/>,
/// which every simulated host reaches) and a free port.
/// <para>
/// Engines trust the CA through <c>/etc/docker/certs.d/{Host}/ca.crt</c>. dockerd 20.10 has that path
/// compiled in (no flag, no daemon.json key, independent of --data-root/--exec-root; only rootless mode
/// reads ~/.config/docker/certs.d instead), and the rig's dockerds share the root mount namespace (nsenter
/// --net only), so every rig host sees it. It is read again on each pull and push, so writing it after
/// the engines started is enough. The directory is keyed by IP:port, so registries of parallel rigs never
/// share one.
/// </para>
/// </summary>
public sealed class ImageRegistry : IAsyncDisposable
{
    /// <summary>Where dockerd looks for a registry's CA (hard-coded in dockerd, see the class comment).</summary>
    public const string EngineCertsRoot = "/etc/docker/certs.d";

    private readonly string _dir;
    private ChildProcess? _process;
    private string? _trustDir;
    private X509Certificate2? _ca;

    private ImageRegistry(string dir, string host, string user, string password)
    {
        _dir = dir;
        Host = host;
        User = user;
        Password = password;
    }

    /// <summary>"IP:port", the registry part of image names (<c>{Host}/edgeeru/busybox:1</c>).</summary>
    public string Host { get; }

    /// <summary>The private CA's certificate (PEM) that signed the registry's server certificate.</summary>
    public string CaPath => Path.Combine(_dir, "ca.crt");

    public string User { get; }
    public string Password { get; }

    /// <summary>"user:password", as <c>DockerEngine.EnsureImageAsync</c> takes it.</summary>
    public string Auth => $"{User}:{Password}";

    /// <summary>The engines' trust directory for this registry; null until <see cref="TrustOnEngines"/> ran.</summary>
    public string? EngineTrustDir => _trustDir;

    /// <summary>Where the registry keeps repositories and blobs (Distribution's filesystem layout, under docker/registry/v2).</summary>
    public string StorageDir => Path.Combine(_dir, "data");

    /// <summary>
    /// Installs the CA for every engine on this machine (<c>{EngineCertsRoot}/{Host}/ca.crt</c>); undone on dispose.
    /// dockerd reads it on the next pull or push.
    /// </summary>
    public void TrustOnEngines()
    {
        var dir = Path.Combine(EngineCertsRoot, Host);
        Directory.CreateDirectory(dir);
        _trustDir = dir;
        File.Copy(CaPath, Path.Combine(dir, "ca.crt"), overwrite: true);
    }

    /// <summary>A client for the registry API (base address https://Host/): trusts only its CA, sends the credentials.</summary>
    public HttpClient CreateClient()
    {
        var http = new HttpClient(TrustingHandler(_ca!)) { BaseAddress = new Uri($"https://{Host}/"), Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Auth)));
        return http;
    }

    private static HttpClientHandler TrustingHandler(X509Certificate2 ca) => new()
    {
        ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
        {
            if (cert is null) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(cert);
        },
    };

    /// <summary>
    /// Starts a registry on <paramref name="listenAddress"/> (an IPv4 address of this namespace) and waits
    /// until <c>https://Host/v2/</c> asks for credentials. With <paramref name="trustedByEngines"/> false
    /// the CA is not installed for dockerd (to test an engine that does not trust the registry).
    /// </summary>
    public static async Task<ImageRegistry> StartAsync(string listenAddress, string user = "eru", string? password = null,
        bool trustedByEngines = true, CancellationToken ct = default)
    {
        var binary = Tools.Find("docker-registry", "docker-registry");
        var ip = IPAddress.Parse(listenAddress);
        password ??= Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
        var dir = Path.Combine(Path.GetTempPath(), "eru-registry-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        var registry = new ImageRegistry(dir, $"{listenAddress}:{Ports.FreeTcp()}", user, password);
        try
        {
            var ca = registry._ca = TestCertificates.WriteCaAndServer(dir, "EdgeEru test registry CA", ip);
            await File.WriteAllTextAsync(Path.Combine(dir, "htpasswd"), $"{user}:{BcryptHash(password)}\n", ct);
            var config = Path.Combine(dir, "config.yml");
            await File.WriteAllTextAsync(config, registry.Config(), ct);
            if (trustedByEngines) registry.TrustOnEngines();
            registry._process = ChildProcess.Start(binary, ["serve", config]);
            await registry.WaitUntilServingAsync(ca, ct);
            return registry;
        }
        catch
        {
            await registry.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// htpasswd line for the registry, which accepts bcrypt only. Made with BouncyCastle's OpenBsdBCrypt
    /// (no apache2-utils needed); cost 4, the least Go's bcrypt takes: the registry checks it on every
    /// request and this is a test fixture.
    /// </summary>
    private static string BcryptHash(string password) =>
        OpenBsdBCrypt.Generate("2y", password.ToCharArray(), RandomNumberGenerator.GetBytes(16), 4);

    private string Config() => $"""
        version: 0.1
        log:
          level: info
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: {Path.Combine(_dir, "data")}
          delete:
            enabled: true
          maintenance:
            uploadpurging:
              enabled: false
        http:
          addr: {Host}
          secret: {Convert.ToHexString(RandomNumberGenerator.GetBytes(16))}
          tls:
            certificate: {Path.Combine(_dir, "server.crt")}
            key: {Path.Combine(_dir, "server.key")}
        auth:
          htpasswd:
            realm: edgeeru-test
            path: {Path.Combine(_dir, "htpasswd")}

        """;

    /// <summary>Waits for 401 from /v2/ over TLS that trusts only our CA (so the certificate is checked too).</summary>
    private async Task WaitUntilServingAsync(X509Certificate2 ca, CancellationToken ct)
    {
        using var http = new HttpClient(TrustingHandler(ca)) { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        string? last = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"docker-registry on {Host} exited with code {_process.ExitCode}:\n" +
                    _process.OutputTail());
            }
            try
            {
                using var response = await http.GetAsync(new Uri($"https://{Host}/v2/"), ct);
                if (response.StatusCode == HttpStatusCode.Unauthorized) return;
                last = $"answered {(int)response.StatusCode}, not 401";
            }
            catch (HttpRequestException ex)
            {
                last = ex.InnerException?.Message ?? ex.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                last = "no answer within 2 s";
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"docker-registry on {Host} did not ask for credentials within 20 s ({last}):\n" +
                    _process.OutputTail());
            }
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Stops the registry process it started and removes its files and its engine trust directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        _ca?.Dispose();
        foreach (var dir in new[] { _trustDir, _dir })
        {
            try
            {
                if (dir is not null && Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
