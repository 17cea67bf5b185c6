using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Prometheus;

namespace EdgeEru.Lb.Acme;

/// <summary>
/// Orders and renews the certificates LB domains ask for with an <c>acme</c> block. Every replica looks;
/// one orders at a time, the one that created the lock key (<c>lb/acme-locks/orders</c>, under its lease).
/// The account key and the issued certificates are kept in the registry, so every replica serves the
/// result (through <see cref="Tls.TlsCertificates"/>) and any of them can renew it. A failed order is
/// logged, counted and retried with back-off; the certificate stored before keeps serving meanwhile.
/// </summary>
internal sealed class AcmeCertificates : BackgroundService
{
    public const string LockName = "orders";

    private static readonly Counter Attempts = Metrics.CreateCounter("eru_lb_acme_orders_total",
        "ACME orders this replica made, by domain and outcome (issued, failed).",
        new CounterConfiguration { LabelNames = ["domain", "outcome"] });
    private static readonly Gauge NextRenewal = Metrics.CreateGauge("eru_lb_acme_next_renewal_timestamp_seconds",
        "When the domain's ACME certificate is next ordered (Unix seconds): its renewal time, or the next try after a failure.",
        new GaugeConfiguration { LabelNames = ["domain"] });

    private readonly RegistryStore _store;
    private readonly RegistryWatcher _watcher;
    private readonly ILogger<AcmeCertificates> _log;
    private readonly HttpClient _http;
    private readonly bool _orders;
    private readonly TimeSpan _check, _poll, _patience, _lockTtl, _firstRetry, _maxRetry;
    private readonly string _holder = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
    // The shared back-off as this replica last read or wrote it: saves taking the lock only to learn it must wait.
    private readonly Dictionary<string, DateTimeOffset> _nextTry = new(StringComparer.OrdinalIgnoreCase);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private IDisposable? _subscription;
    private object? _seenDomains, _seenCertificates;
    private readonly HashSet<string> _labelled = new(StringComparer.OrdinalIgnoreCase);

    public AcmeCertificates(IConfiguration config, RegistryStore store, RegistryWatcher watcher, ILogger<AcmeCertificates> log)
    {
        _store = store;
        _watcher = watcher;
        _log = log;
        TimeSpan Seconds(string key, double fallback) => TimeSpan.FromSeconds(Math.Clamp(config.GetValue(key, fallback), 0.05, 86_400));
        // Lb:Acme:Orders false: this replica answers HTTP-01 (every replica does) but never orders itself.
        _orders = config.GetValue("Lb:Acme:Orders", true);
        _check = Seconds("Lb:Acme:CheckSeconds", 60);
        _poll = Seconds("Lb:Acme:PollSeconds", 1);
        _patience = Seconds("Lb:Acme:OrderTimeoutSeconds", 180);
        _lockTtl = Seconds("Lb:Acme:LockSeconds", 30);
        _firstRetry = Seconds("Lb:Acme:RetrySeconds", 300);
        _maxRetry = Seconds("Lb:Acme:MaxRetrySeconds", 6 * 3600);
        _http = new HttpClient(Handler(config["Lb:Acme:CaCertificates"])) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>
    /// The CA's HTTPS is checked against the system's roots, and also against <c>Lb:Acme:CaCertificates</c>
    /// (a PEM file) when set: a private or test CA such as pebble.
    /// </summary>
    private static SocketsHttpHandler Handler(string? caFile)
    {
        var handler = new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false };
        if (string.IsNullOrWhiteSpace(caFile)) return handler;
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caFile);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) =>
        {
            if (errors == SslPolicyErrors.None) return true;
            if (cert is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(new X509Certificate2(cert));
        };
        return handler;
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Woken by changes to domains or certificates only: an order's own challenge and lock writes move the
        // registry too, and would have every replica reach for the lock again and again meanwhile.
        // Snapshots keep a kind's dictionary when none of its keys changed, so reference equality says "unchanged".
        _subscription = _watcher.Subscribe(snapshot =>
        {
            if (ReferenceEquals(snapshot.LbDomains, _seenDomains) && ReferenceEquals(snapshot.LbCertificates, _seenCertificates)) return;
            (_seenDomains, _seenCertificates) = (snapshot.LbDomains, snapshot.LbCertificates); // a wake missed: the next look
            Wake();
        });
        return base.StartAsync(cancellationToken);
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_orders) return;
        try
        {
            await _watcher.Ready.WaitAsync(stoppingToken);
            while (!stoppingToken.IsCancellationRequested)
            {
                await LookAsync(stoppingToken);
                await _wake.WaitAsync(_check, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One look at every domain that asks for ACME: orders those due and not backing off.</summary>
    private async Task LookAsync(CancellationToken ct)
    {
        var snapshot = _watcher.Current;
        var now = DateTimeOffset.UtcNow;
        // A domain that no longer asks for ACME leaves the next-renewal metric.
        foreach (var gone in _labelled.Where(d => snapshot.LbDomains.GetValueOrDefault(d)?.Acme is null).ToList())
        {
            NextRenewal.RemoveLabelled(gone);
            _labelled.Remove(gone);
        }
        foreach (var domain in snapshot.LbDomains.Values)
        {
            if (domain.Acme is not { } acme) continue;
            _labelled.Add(domain.Name);
            snapshot.LbCertificates.TryGetValue(LbCertificate.AcmeNameFor(domain.Name), out var current);
            var backoff = _nextTry.GetValueOrDefault(domain.Name);
            var due = current?.Acme?.RenewAt ?? now;
            SetNext(domain.Name, backoff > due ? backoff : due);
            if (!AcmeSchedule.IsDue(current, now) || now < backoff) continue;
            try
            {
                await OrderUnderLockAsync(domain.Name, acme, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // The registry, not the CA, failed us (the lock, a read): no order was made; look again at the next check.
                _log.LogWarning("ACME look at {Domain} failed before any order: {Error}", domain.Name, ex.Message);
            }
        }
    }

    private static void SetNext(string domain, DateTimeOffset at) =>
        NextRenewal.WithLabels(domain).Set(at.ToUnixTimeMilliseconds() / 1000.0);

    /// <summary>
    /// Orders under the lock, unless another replica holds it, already renewed, or the shared back-off says
    /// wait. A failed order is counted, logged with the CA's words and kept as the domain's order state.
    /// </summary>
    private async Task OrderUnderLockAsync(string domain, LbAcme acme, CancellationToken ct)
    {
        await using var lease = await _store.GrantLeaseAsync(_lockTtl, keepAlive: true, ct);
        var held = new LbAcmeLock { Name = LockName, Holder = _holder, Since = DateTimeOffset.UtcNow };
        if (!await _store.CreateAsync(Kinds.LbAcmeLocks, held, lease.Id, ct))
        {
            var holder = (await _store.GetAsync(Kinds.LbAcmeLocks, LockName, ct))?.Value.Holder ?? "a replica that just let go";
            _log.LogInformation("ACME order for {Domain} waits: {Holder} holds the lock", domain, holder);
            return; // look again at the next check
        }
        // Our snapshot may be older than the lock: the replica that held it may have stored this certificate.
        var name = LbCertificate.AcmeNameFor(domain);
        var current = (await _store.GetAsync(Kinds.LbCertificates, name, ct))?.Value;
        var now = DateTimeOffset.UtcNow;
        if (!AcmeSchedule.IsDue(current, now)) return;
        var state = (await _store.GetAsync(Kinds.LbAcmeOrders, domain, ct))?.Value;
        if (state is not null && now < state.NextTryAt)
        {
            _nextTry[domain] = state.NextTryAt; // another replica failed recently: its back-off holds here too
            return;
        }
        using var orderCt = CancellationTokenSource.CreateLinkedTokenSource(ct, lease.Lost);
        _log.LogInformation("ACME order for {Domain} at {Directory}: {Why}", domain, acme.Directory,
            current is null ? "first certificate" : $"renewal (due {current.Acme?.RenewAt:u})");
        try
        {
            var renewAt = await OrderAsync(domain, acme, name, lease.Id, orderCt.Token);
            if (state is not null) await _store.DeleteAsync(Kinds.LbAcmeOrders, domain, ct);
            _nextTry.Remove(domain);
            Attempts.WithLabels(domain, "issued").Inc();
            SetNext(domain, renewAt);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            var failures = (state?.Failures ?? 0) + 1;
            var retry = DateTimeOffset.UtcNow + AcmeSchedule.Backoff(failures, _firstRetry, _maxRetry);
            _nextTry[domain] = retry;
            Attempts.WithLabels(domain, "failed").Inc();
            SetNext(domain, retry);
            var error = lease.IsLost ? "the lock's lease was lost (etcd out of reach)" : ex.Message;
            _log.LogError("ACME order for {Domain} failed (attempt {Attempt}): {Error}; {Keeping}; next try at {Retry:u}",
                domain, failures, error, current is null ? "no certificate to serve yet" : "the current certificate keeps serving", retry);
            await _store.PutAsync(Kinds.LbAcmeOrders, new LbAcmeOrderState
            {
                Domain = domain, Failures = failures, LastError = error.Length > 4096 ? error[..4096] : error,
                LastAttemptAt = now, NextTryAt = retry,
            }, ct: ct);
        }
    }

    /// <summary>The order itself: account, order flow, the certificate stored for every replica. Returns its renewal time.</summary>
    private async Task<DateTimeOffset> OrderAsync(string domain, LbAcme acme, string name, long lease, CancellationToken ct)
    {
        var (account, key) = await AccountAsync(acme, ct);
        using var _ = key;
        var client = new AcmeClient(_http, new Uri(acme.Directory), key);
        // newAccount every time: it finds the account this key has, or makes it again where the CA forgot it.
        var url = await client.AccountAsync(acme.Email, ct);
        if (account.Url != url) await _store.PutAsync(Kinds.LbAcmeAccounts, account with { Url = url }, ct: ct);
        var flow = new AcmeOrderFlow(client, new RegistryChallengeBoard(_store, lease), key, _poll, _patience);
        var issued = await flow.IssueAsync(domain, ct);
        var renewAt = AcmeSchedule.RenewAt(issued.NotBefore, issued.NotAfter);
        await _store.PutAsync(Kinds.LbCertificates, new LbCertificate
        {
            Name = name, Certificate = issued.ChainPem, Key = issued.KeyPem,
            Acme = new LbCertificateAcme { Domain = domain, RenewAt = renewAt },
        }, ct: ct);
        _log.LogInformation("ACME order for {Domain}: issued by {Issuer}, valid until {NotAfter:u}, renews at {RenewAt:u}",
            domain, issued.Issuer, issued.NotAfter, renewAt);
        return renewAt;
    }

    /// <summary>The account and its key from the registry, made and stored on first use (the first replica to store it wins).</summary>
    private async Task<(LbAcmeAccount Account, ECDsa Key)> AccountAsync(LbAcme acme, CancellationToken ct)
    {
        var name = LbAcmeAccount.NameFor(acme.Directory, acme.Email);
        var account = (await _store.GetAsync(Kinds.LbAcmeAccounts, name, ct))?.Value;
        if (account is null)
        {
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var made = new LbAcmeAccount
            {
                Name = name, Directory = acme.Directory, Email = acme.Email, Key = fresh.ExportPkcs8PrivateKeyPem(),
                CreatedAt = DateTimeOffset.UtcNow,
            };
            account = await _store.CreateAsync(Kinds.LbAcmeAccounts, made, ct: ct) ? made
                : (await _store.GetAsync(Kinds.LbAcmeAccounts, name, ct))?.Value
                  ?? throw new InvalidOperationException($"account {name} vanished");
        }
        var key = ECDsa.Create();
        key.ImportFromPem(account.Key);
        return (account, key);
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        return base.StopAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _subscription?.Dispose();
        _http.Dispose();
        _wake.Dispose();
        base.Dispose();
    }
}
