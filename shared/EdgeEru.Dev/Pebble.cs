using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace EdgeEru.Dev;

/// <summary>
/// A real ACME CA for tests and <c>eru dev</c>: Let's Encrypt's pebble (Debian package pebble) as a child
/// process on loopback. Its HTTPS uses a certificate from a CA made here (<see cref="CaPath"/>: trust it to
/// reach the directory); it validates HTTP-01 on <c>{domain}:{httpPort}</c> (eru-lb's plain port) and
/// resolves every domain to 127.0.0.1 through <see cref="LoopbackDns"/>, so nothing leaves the machine.
/// Certificates it issues chain to a root it makes at start (<see cref="IssuingRootPemAsync"/>).
/// </summary>
public sealed class Pebble : IAsyncDisposable
{
    private readonly string _dir;
    private ChildProcess? _process;
    private LoopbackDns? _dns;
    private X509Certificate2? _ca;
    private int _issued;

    private Pebble(string dir, int port, int managementPort)
    {
        _dir = dir;
        Port = port;
        ManagementPort = managementPort;
    }

    public int Port { get; }
    public int ManagementPort { get; }

    /// <summary>The ACME directory URL.</summary>
    public string Directory => $"https://127.0.0.1:{Port}/dir";

    /// <summary>PEM of the CA that signed pebble's own HTTPS certificate (for <c>Lb:Acme:CaCertificates</c>).</summary>
    public string CaPath => Path.Combine(_dir, "ca.crt");

    /// <summary>Certificates pebble issued so far (counted from its log: one line per issuance).</summary>
    public int Issued => Volatile.Read(ref _issued);

    /// <summary>The last lines pebble printed (for assertion messages).</summary>
    public string OutputTail() => _process?.OutputTail() ?? "";

    /// <summary>
    /// Starts pebble with HTTP-01 checked on <paramref name="httpPort"/>; issued certificates live
    /// <paramref name="validity"/> (pebble's default, five years, when null). Nonces are never refused at
    /// random and validation does not sleep (PEBBLE_WFE_NONCEREJECT=0, PEBBLE_VA_NOSLEEP=1), authorizations are
    /// never reused (each order is validated again).
    /// </summary>
    public static async Task<Pebble> StartAsync(int httpPort, TimeSpan? validity = null, Action<string>? onLine = null,
        CancellationToken ct = default)
    {
        var binary = Tools.Find("pebble", "pebble");
        var dir = Path.Combine(Path.GetTempPath(), "eru-pebble-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(dir);
        var pebble = new Pebble(dir, Ports.FreeTcp(), Ports.FreeTcp());
        try
        {
            pebble._ca = TestCertificates.WriteCaAndServer(dir, "EdgeEru test pebble CA", IPAddress.Loopback, "localhost");
            pebble._dns = LoopbackDns.Start();
            var config = Path.Combine(dir, "pebble.json");
            var settings = new Dictionary<string, object>
            {
                ["listenAddress"] = $"127.0.0.1:{pebble.Port}",
                ["managementListenAddress"] = $"127.0.0.1:{pebble.ManagementPort}",
                ["certificate"] = Path.Combine(dir, "server.crt"),
                ["privateKey"] = Path.Combine(dir, "server.key"),
                ["httpPort"] = httpPort,
                ["tlsPort"] = Ports.FreeTcp(), // TLS-ALPN-01 is not used; a port no one answers
                ["ocspResponderURL"] = "",
                ["externalAccountBindingRequired"] = false,
            };
            if (validity is { } v) settings["certificateValidityPeriod"] = (ulong)Math.Max(1, v.TotalSeconds);
            await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new Dictionary<string, object> { ["pebble"] = settings }), ct);
            var environment = new Dictionary<string, string>
            {
                ["PEBBLE_VA_NOSLEEP"] = "1", ["PEBBLE_WFE_NONCEREJECT"] = "0", ["PEBBLE_AUTHZREUSE"] = "0",
            };
            string[] args = ["-config", config, "-dnsserver", $"127.0.0.1:{pebble._dns.Port}", "-strict=false"];
            pebble._process = ChildProcess.Start(binary, args,
                line =>
                {
                    if (line.Contains("Issued certificate serial", StringComparison.Ordinal)) Interlocked.Increment(ref pebble._issued);
                    onLine?.Invoke(line);
                }, environment);
            await pebble.WaitUntilServingAsync(ct);
            return pebble;
        }
        catch
        {
            await pebble.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client that trusts pebble's HTTPS certificate (for the directory and the management API).</summary>
    public HttpClient CreateClient() => new(new HttpClientHandler
    {
        ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert is not null && Chains(cert, _ca!),
    }) { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>PEM of the root the issued certificates chain to (regenerated at every start of pebble).</summary>
    public async Task<string> IssuingRootPemAsync(CancellationToken ct = default)
    {
        using var http = CreateClient();
        return await http.GetStringAsync(new Uri($"https://127.0.0.1:{ManagementPort}/roots/0"), ct);
    }

    /// <summary>Whether <paramref name="cert"/> chains to <paramref name="root"/> alone (no system roots).</summary>
    public static bool Chains(X509Certificate2 cert, X509Certificate2 root, X509Certificate2Collection? intermediates = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        if (intermediates is not null) chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(cert);
    }

    private async Task WaitUntilServingAsync(CancellationToken ct)
    {
        using var http = CreateClient();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        string? last = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (_process!.HasExited)
                throw new InvalidOperationException($"pebble exited with code {_process.ExitCode}:\n{_process.OutputTail()}");
            try
            {
                using var response = await http.GetAsync(new Uri(Directory), ct);
                if (response.IsSuccessStatusCode) return;
                last = $"answered {(int)response.StatusCode}";
            }
            catch (HttpRequestException ex)
            {
                last = ex.InnerException?.Message ?? ex.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                last = "no answer within 10 s";
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"pebble did not serve {Directory} within 30 s ({last}):\n{_process.OutputTail()}");
            await Task.Delay(50, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        _dns?.Dispose();
        _ca?.Dispose();
        try
        {
            if (System.IO.Directory.Exists(_dir)) System.IO.Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// A DNS responder on a loopback UDP port that answers every A question with 127.0.0.1 and any other type with
/// no records: what pebble's validation needs to reach eru-lb here for any test domain, and no more.
/// </summary>
public sealed class LoopbackDns : IDisposable
{
    private readonly UdpClient _udp;
    private readonly CancellationTokenSource _stop = new();

    private LoopbackDns(UdpClient udp)
    {
        _udp = udp;
        Port = ((IPEndPoint)udp.Client.LocalEndPoint!).Port;
        _ = ServeAsync();
    }

    public int Port { get; }

    public static LoopbackDns Start() => new(new UdpClient(new IPEndPoint(IPAddress.Loopback, 0)));

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var query = await _udp.ReceiveAsync(_stop.Token);
                if (Answer(query.Buffer) is { } answer) await _udp.SendAsync(answer, query.RemoteEndPoint, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (_stop.IsCancellationRequested) return;
            }
        }
    }

    /// <summary>The answer to one query (RFC 1035 4.1): its header and question echoed, one A record or none.</summary>
    public static byte[]? Answer(byte[] query)
    {
        if (query.Length < 12 || (query[4] << 8 | query[5]) != 1) return null;
        var end = 12;
        while (end < query.Length && query[end] != 0) end += query[end] + 1; // the question's name, label by label
        if (end + 5 > query.Length) return null;
        var question = query.AsSpan(12, end + 5 - 12);
        var isA = query[end + 1] == 0 && query[end + 2] == 1;
        var answer = new List<byte>(query.AsSpan(0, 2).ToArray()) { 0x81, 0x80, 0, 1, 0, (byte)(isA ? 1 : 0), 0, 0, 0, 0 };
        answer.AddRange(question);
        if (isA) answer.AddRange([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]); // name: pointer to the question's
        return [.. answer];
    }

    public void Dispose()
    {
        _stop.Cancel();
        _udp.Dispose();
        _stop.Dispose();
    }
}
