using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// ACME against a real CA: pebble on loopback validating HTTP-01 on an eru-lb's plain port, real etcd, real
/// eru-lb hosts. Checks what a client sees: the certificate served by SNI over TLS, chaining to pebble's root.
/// </summary>
public sealed class AcmeTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime
{
    private const string Domain = "shop.acme.test";
    private readonly RecordingOutput _log = new(output);
    private readonly List<IAsyncDisposable> _parts = [];
    private readonly string _prefix = EtcdFixture.NewPrefix();
    private RegistryStore _store = null!;
    private EdgeEru.Registry.Etcd.EtcdConnection? _conn;

    public Task InitializeAsync()
    {
        var (conn, store) = etcd.Connect(_prefix);
        _conn = conn;
        _store = store;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        for (var i = _parts.Count - 1; i >= 0; i--) await _parts[i].DisposeAsync();
        _conn?.Dispose();
    }

    private async Task<Pebble> PebbleAsync(int httpPort, TimeSpan? validity = null)
    {
        var pebble = await Pebble.StartAsync(httpPort, validity, line => output.WriteLine("pebble: " + line));
        _parts.Add(pebble);
        return pebble;
    }

    /// <summary>An eru-lb with a TLS port, trusting pebble's HTTPS, looking for due orders twice a second.</summary>
    private async Task<(TestLb Lb, int TlsPort)> LbAsync(Pebble pebble, int? httpPort = null, bool orders = true)
    {
        var tlsPort = Ports.FreeTcp();
        string[] extra =
        [
            "--Lb:Tls:Urls", $"https://127.0.0.1:{tlsPort}", "--Lb:Acme:CaCertificates", pebble.CaPath,
            "--Lb:Acme:CheckSeconds", "0.5", "--Lb:Acme:PollSeconds", "0.2", "--Lb:Acme:RetrySeconds", "2",
            "--Lb:Acme:Orders", orders ? "true" : "false",
            .. httpPort is { } p ? ["--Lb:Urls", $"http://127.0.0.1:{p}"] : Array.Empty<string>(),
        ];
        var lb = await TestLb.StartAsync(etcd.Url, _prefix, _log, extra: extra);
        _parts.Add(lb);
        return (lb, tlsPort);
    }

    private Task<long> PutDomainAsync(Pebble pebble) => _store.PutAsync(Kinds.LbDomains, new LbDomain
    {
        Name = Domain,
        Init = "r",
        Nodes = new() { ["r"] = new LbNode { Type = "respond", Status = 200, Body = "acme ok" } },
        Acme = new LbAcme { Directory = pebble.Directory, Email = "ops@acme.test" },
    });

    [Fact]
    public async Task A_domain_with_an_acme_block_gets_a_certificate_from_the_CA_served_by_SNI()
    {
        var httpPort = Ports.FreeTcp();
        var pebble = await PebbleAsync(httpPort);
        var (lb, tlsPort) = await LbAsync(pebble, httpPort);
        await PutDomainAsync(pebble);

        var served = await UntilServedAsync(tlsPort, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal), "a pebble certificate");
        Assert.Contains(Domain, new X509SubjectAlternativeNameExtension(served.Extensions["2.5.29.17"]!.RawData).EnumerateDnsNames());

        // A client that trusts pebble's root alone gets the domain's answer over TLS.
        var root = X509Certificate2.CreateFromPem(await pebble.IssuingRootPemAsync());
        using var http = Https(tlsPort, root);
        Assert.Equal("acme ok", await http.GetStringAsync(new Uri($"https://{Domain}/")));

        // Kept in the registry: the certificate with its renewal time, the account key (private); no challenge left over.
        var stored = (await _store.GetAsync(Kinds.LbCertificates, LbCertificate.AcmeNameFor(Domain)))!.Value;
        Assert.Equal(Domain, stored.Acme!.Domain);
        var twoThirds = AcmeLifetime(served) * 2 / 3 - (stored.Acme.RenewAt - served.NotBefore.ToUniversalTime());
        Assert.InRange(twoThirds.Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(2));
        var account = (await _store.GetAsync(Kinds.LbAcmeAccounts, LbAcmeAccount.NameFor(pebble.Directory, "ops@acme.test")))!.Value;
        Assert.Contains("PRIVATE KEY", account.Key, StringComparison.Ordinal);
        Assert.Empty((await _store.ListAsync(Kinds.LbAcmeChallenges)).Items);
        Assert.Null(await _store.GetAsync(Kinds.LbAcmeLocks, "orders")); // released
        Assert.Equal(1, pebble.Issued);
        Assert.Contains(_log.Lines, l => l.Contains($"ACME order for {Domain}: issued by", StringComparison.Ordinal));

        // eru lb cert ls: the issuer, the expiry and the next renewal.
        var (code, listing) = await EruAsync("lb", "cert", "ls", "--admin", $"http://127.0.0.1:{lb.AdminPort}", "--token", "t");
        Assert.Equal(0, code);
        var row = listing.Split('\n').Single(l => l.StartsWith($"registry:acme-{Domain} ", StringComparison.Ordinal));
        Assert.Contains(served.Issuer, row, StringComparison.Ordinal);
        Assert.Contains(served.NotAfter.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture), row,
            StringComparison.Ordinal);
        Assert.Contains(stored.Acme.RenewAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture), row,
            StringComparison.Ordinal);
    }

    /// <summary>The eru CLI as a process (its build output beside this test project's configuration).</summary>
    private async Task<(int Code, string Output)> EruAsync(params string[] args)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(Repo.Root, "core", "EdgeEru.Cli", "bin", configuration, "net10.0", "eru.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var (stdout, stderr) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        var output = await stdout + await stderr;
        _log.WriteLine($"$ eru {string.Join(' ', args)}\n{output}");
        return (p.ExitCode, output);
    }

    [Fact]
    public async Task Two_replicas_racing_make_exactly_one_order_and_both_serve_its_certificate()
    {
        var httpPort = Ports.FreeTcp();
        var pebble = await PebbleAsync(httpPort);
        var (_, tlsA) = await LbAsync(pebble, httpPort);
        var (_, tlsB) = await LbAsync(pebble); // pebble reaches only A: when B orders, A answers the challenge
        await PutDomainAsync(pebble); // both see it in the same snapshot and reach for the lock together

        var a = await UntilServedAsync(tlsA, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal), "A serving a pebble certificate");
        var b = await UntilServedAsync(tlsB, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal), "B serving a pebble certificate");
        Assert.Equal(a.SerialNumber, b.SerialNumber);
        await Task.Delay(TimeSpan.FromSeconds(3)); // six more looks by each replica
        Assert.Equal(1, pebble.Issued);
        Assert.Single(_log.Lines, l => l.Contains($"ACME order for {Domain} at ", StringComparison.Ordinal));
        Assert.Equal(a.SerialNumber, (await ServedAsync(tlsA))!.SerialNumber);
    }

    [Fact]
    public async Task A_certificate_is_renewed_two_thirds_into_its_lifetime_and_the_new_one_served()
    {
        var httpPort = Ports.FreeTcp();
        var pebble = await PebbleAsync(httpPort, validity: TimeSpan.FromSeconds(12)); // renewed about 8 s after issue
        var (lb, tlsPort) = await LbAsync(pebble, httpPort);
        await PutDomainAsync(pebble);

        var first = await UntilServedAsync(tlsPort, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal), "the first certificate");
        var second = await UntilServedAsync(tlsPort, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal)
            && c.SerialNumber != first.SerialNumber, "a renewed certificate", TimeSpan.FromSeconds(40));
        Assert.True(second.NotAfter > first.NotAfter);
        // Not before two thirds of the first one's lifetime (a second of slack: certificate times are whole seconds).
        var renewedAt = second.NotBefore.ToUniversalTime();
        Assert.True(renewedAt >= first.NotBefore.ToUniversalTime() + AcmeLifetime(first) * 2 / 3 - TimeSpan.FromSeconds(1),
            $"renewed at {renewedAt:O}, first valid {first.NotBefore.ToUniversalTime():O} to {first.NotAfter.ToUniversalTime():O}");
        Assert.Contains(_log.Lines, l => l.Contains($"ACME order for {Domain} at ", StringComparison.Ordinal)
            && l.Contains("renewal (due", StringComparison.Ordinal));

        var metrics = await Metrics(lb);
        Assert.Contains($"eru_lb_acme_orders_total{{domain=\"{Domain}\",outcome=\"issued\"}}", metrics, StringComparison.Ordinal);
        var stored = (await _store.GetAsync(Kinds.LbCertificates, LbCertificate.AcmeNameFor(Domain)))!.Value;
        var next = NextRenewal(metrics);
        Assert.InRange(next, stored.Acme!.RenewAt.ToUnixTimeSeconds() - 1, stored.Acme.RenewAt.ToUnixTimeSeconds() + 20);
    }

    [Fact]
    public async Task A_failing_challenge_is_logged_and_counted_backs_off_and_the_old_certificate_keeps_serving()
    {
        var httpPort = Ports.FreeTcp();
        var pebble = await PebbleAsync(httpPort, validity: TimeSpan.FromSeconds(30)); // renewal due about 20 s after issue
        // A answers HTTP-01 (pebble reaches only it) and orders nothing; B orders and serves TLS.
        var (answering, _) = await LbAsync(pebble, httpPort, orders: false);
        var (ordering, tlsPort) = await LbAsync(pebble);
        await PutDomainAsync(pebble);
        var first = await UntilServedAsync(tlsPort, c => c.Issuer.Contains("Pebble", StringComparison.Ordinal), "the first certificate");

        // Without A, the CA's validation finds nothing listening: every renewal fails.
        _parts.Remove(answering);
        await answering.DisposeAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
        LbAcmeOrderState? state = null;
        while (state is not { Failures: >= 2 })
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no two failed orders in the registry; last: {state}");
            await Task.Delay(250);
            state = (await _store.GetAsync(Kinds.LbAcmeOrders, Domain))?.Value;
        }
        Assert.Contains("invalid", state.LastError, StringComparison.Ordinal); // the CA's verdict on the authorization
        Assert.True(state.NextTryAt > state.LastAttemptAt);
        var failed = _log.Lines.Where(l => l.Contains($"ACME order for {Domain} failed (attempt ", StringComparison.Ordinal)).ToList();
        Assert.True(failed.Count >= 2, string.Join("\n", failed));
        Assert.All(failed, l => Assert.Contains("the current certificate keeps serving", l, StringComparison.Ordinal));
        // Back-off: the second try waited at least Lb:Acme:RetrySeconds (2 s) after the first.
        Assert.Contains("failed (attempt 1)", failed[0], StringComparison.Ordinal);

        Assert.Equal(first.SerialNumber, (await ServedAsync(tlsPort))!.SerialNumber); // the old certificate serves on
        Assert.Equal(1, pebble.Issued);
        var metrics = await Metrics(ordering);
        Assert.Contains($"eru_lb_acme_orders_total{{domain=\"{Domain}\",outcome=\"failed\"}}", metrics, StringComparison.Ordinal);
        Assert.True(NextRenewal(metrics) >= state.NextTryAt.ToUnixTimeSeconds() - 1,
            "the metric shows the next try, not the past due time");

        // eru lb cert ls says why, under the table.
        var (code, listing) = await EruAsync("lb", "cert", "ls", "--admin", $"http://127.0.0.1:{ordering.AdminPort}", "--token", "t");
        Assert.Equal(0, code);
        Assert.Contains($"{Domain}: ", listing, StringComparison.Ordinal);
        Assert.Contains("failed order(s) in a row, last: authorization of shop.acme.test is invalid", listing, StringComparison.Ordinal);
    }

    private static async Task<string> Metrics(TestLb lb)
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{lb.OpsPort}/metrics"));
    }

    private static double NextRenewal(string metrics)
    {
        var line = metrics.Split('\n').Single(l => l.StartsWith($"eru_lb_acme_next_renewal_timestamp_seconds{{domain=\"{Domain}\"}}",
            StringComparison.Ordinal));
        return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Every_replica_answers_a_challenge_from_the_registry_for_its_domain_only()
    {
        const string token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        await _store.PutAsync(Kinds.LbAcmeChallenges,
            new LbAcmeChallenge { Token = token, KeyAuthorization = token + ".thumbprint", Domain = Domain });
        foreach (var transport in new[] { "epoll", "sockets" }) // the fast path hands it to Kestrel; Kestrel alone
        {
            var lb = await TestLb.StartAsync(etcd.Url, _prefix, _log, extra: ["--Lb:Transport", transport]);
            _parts.Add(lb);
            using var http = new HttpClient { BaseAddress = lb.Url };
            async Task<(int, string)> Get(string host, string path)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Host = host;
                using var response = await http.SendAsync(request);
                return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
            }
            // No domain shop.acme.test in the registry: the challenge is answered before any domain's rules.
            Assert.Equal((200, token + ".thumbprint"), await Get(Domain, $"/.well-known/acme-challenge/{token}"));
            Assert.Equal(404, (await Get("other.test", $"/.well-known/acme-challenge/{token}")).Item1);
            Assert.Equal(404, (await Get(Domain, "/.well-known/acme-challenge/not-a-token!")).Item1);
            Assert.Equal(404, (await Get(Domain, $"/.well-known/acme-challenge/{token[..^1]}")).Item1);
        }
    }

    private static TimeSpan AcmeLifetime(X509Certificate2 c) => c.NotAfter.ToUniversalTime() - c.NotBefore.ToUniversalTime();

    /// <summary>Connects with SNI <see cref="Domain"/> until the served certificate passes <paramref name="check"/>.</summary>
    private static async Task<X509Certificate2> UntilServedAsync(int tlsPort, Func<X509Certificate2, bool> check, string what,
        TimeSpan? patience = null)
    {
        var deadline = DateTime.UtcNow + (patience ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var cert = await ServedAsync(tlsPort);
            if (cert is not null && check(cert)) return cert;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"timed out waiting for {what}; last served: {cert?.Subject ?? "none"}");
            await Task.Delay(200);
        }
    }

    private static async Task<X509Certificate2?> ServedAsync(int tlsPort)
    {
        using var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(IPAddress.Loopback, tlsPort);
            X509Certificate2? seen = null;
            await using var tls = new SslStream(tcp.GetStream(), false, (_, cert, _, _) =>
            {
                seen = cert is null ? null : new X509Certificate2(cert);
                return seen is not null; // whichever it is: the test looks at it
            });
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = Domain });
            return seen;
        }
        catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            return null; // no certificate for the name yet: the handshake is refused
        }
    }

    /// <summary>HTTPS to the LB's TLS port for any host, trusting <paramref name="root"/> alone (and the chain the LB sends).</summary>
    private static HttpClient Https(int tlsPort, X509Certificate2 root) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await s.ConnectAsync(IPAddress.Loopback, tlsPort, ct);
            return new NetworkStream(s, ownsSocket: true);
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, cert, chain, errors) =>
                cert is not null && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0
                && Pebble.Chains(new X509Certificate2(cert), root, chain?.ChainPolicy.ExtraStore),
        },
    });
}

/// <summary>Test output that also keeps the lines, so a test can look for a log line.</summary>
internal sealed class RecordingOutput(ITestOutputHelper inner) : ITestOutputHelper
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines) return [.. _lines];
        }
    }

    public void WriteLine(string message)
    {
        lock (_lines) _lines.Add(message);
        inner.WriteLine(message);
    }

    public void WriteLine(string format, params object[] args) =>
        WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args));
}
