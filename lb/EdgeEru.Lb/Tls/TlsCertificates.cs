using System.Collections.Immutable;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Watch;
using Prometheus;

namespace EdgeEru.Lb.Tls;

/// <summary>
/// The certificates TLS termination picks from, from two sources: the directory <c>Lb:Tls:Certificates</c>
/// (PEM pairs <c>NAME.crt</c> with the chain and <c>NAME.key</c>, checked every <c>Lb:Tls:ReloadSeconds</c>
/// for added, changed or removed files) and the registry (<c>lb/certs/{name}</c>, followed live). Each
/// certificate serves the DNS names inside it. Changes swap the store without a restart; a certificate
/// that fails to load is reported and, when it loaded before, keeps serving its last good version.
/// </summary>
internal sealed class TlsCertificates : BackgroundService
{
    private static readonly Gauge Loaded = Metrics.CreateGauge("eru_lb_tls_certificates", "Certificates loaded for TLS termination.");
    private static readonly Counter Failures = Metrics.CreateCounter("eru_lb_tls_certificate_failures_total",
        "Certificates (files or registry values) that failed to load.");
    private static readonly Gauge Expiry = Metrics.CreateGauge("eru_lb_tls_certificate_expiry_seconds",
        "Seconds until a certificate expires.",
        new GaugeConfiguration { LabelNames = ["source"] });

    private readonly string? _directory;
    private readonly string? _defaultName;
    private readonly TimeSpan _period;
    private readonly RegistryWatcher _watcher;
    private readonly ILogger<TlsCertificates> _log;
    private readonly object _gate = new();
    private Dictionary<string, (DateTime Crt, DateTime Key, LoadedCertificate? Cert)> _files = [];
    private Dictionary<string, (LbCertificate Record, LoadedCertificate? Cert)> _registry = [];
    private ImmutableDictionary<string, LbCertificate>? _registrySeen;
    private IDisposable? _subscription;
    private CertificateStore _store = CertificateStore.Empty;

    public TlsCertificates(IConfiguration config, RegistryWatcher watcher, ILogger<TlsCertificates> log)
    {
        _directory = config["Lb:Tls:Certificates"];
        _defaultName = config["Lb:Tls:DefaultName"];
        _period = TimeSpan.FromSeconds(Math.Clamp(config.GetValue("Lb:Tls:ReloadSeconds", 5.0), 0.1, 3600));
        _watcher = watcher;
        _log = log;
        if (_directory is not null) ReloadDirectory(); // before Kestrel takes its first handshake
    }

    public CertificateStore Current => Volatile.Read(ref _store);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _subscription = _watcher.Subscribe(snapshot => FollowRegistry(snapshot.LbCertificates));
        return base.StartAsync(cancellationToken);
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        return base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_directory is null) return;
        using var timer = new PeriodicTimer(_period);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) ReloadDirectory();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Loads the registry's certificates that changed since the last snapshot.</summary>
    private void FollowRegistry(ImmutableDictionary<string, LbCertificate> certificates)
    {
        lock (_gate)
        {
            if (ReferenceEquals(certificates, _registrySeen)) return;
            _registrySeen = certificates;
            var next = new Dictionary<string, (LbCertificate, LoadedCertificate?)>(StringComparer.Ordinal);
            var changed = certificates.Count != _registry.Count;
            foreach (var (name, record) in certificates)
            {
                _registry.TryGetValue(name, out var before);
                if (ReferenceEquals(before.Record, record))
                {
                    next[name] = before;
                    continue;
                }
                changed = true;
                next[name] = (record, Load($"registry:{name}", record.Certificate, record.Key, before.Cert));
            }
            if (!changed) return;
            _registry = next;
            Publish();
        }
    }

    /// <summary>Loads the directory's pairs that changed since the last look; returns true when the store was replaced.</summary>
    public bool ReloadDirectory()
    {
        if (_directory is null) return false;
        string[] files;
        try
        {
            files = Directory.GetFiles(_directory, "*.crt");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.LogError("TLS certificates: cannot read {Directory}: {Error}; keeping the {Count} loaded",
                _directory, ex.Message, Current.Certificates.Count);
            return false;
        }
        lock (_gate)
        {
            var next = new Dictionary<string, (DateTime, DateTime, LoadedCertificate?)>(StringComparer.Ordinal);
            var changed = files.Length != _files.Count;
            foreach (var crt in files)
            {
                var key = Path.ChangeExtension(crt, ".key");
                var stamp = (File.GetLastWriteTimeUtc(crt), File.GetLastWriteTimeUtc(key));
                _files.TryGetValue(crt, out var before);
                if (before.Crt == stamp.Item1 && before.Key == stamp.Item2)
                {
                    next[crt] = before;
                    continue;
                }
                changed = true;
                LoadedCertificate? cert;
                try
                {
                    cert = Load(Path.GetFileName(crt), File.ReadAllText(crt), File.Exists(key) ? File.ReadAllText(key) : null, before.Cert);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    cert = Failed(Path.GetFileName(crt), ex.Message, before.Cert);
                }
                next[crt] = (stamp.Item1, stamp.Item2, cert);
            }
            if (!changed) return false;
            _files = next;
            Publish();
            return true;
        }
    }

    private LoadedCertificate? Load(string source, string certificatePem, string? keyPem, LoadedCertificate? lastGood)
    {
        if (keyPem is null) return Failed(source, "no private key beside it", lastGood);
        try
        {
            var cert = CertificateStore.Load(source, certificatePem, keyPem);
            _log.LogInformation("TLS certificate {Source} loaded for {Names}, valid until {NotAfter:u}",
                source, string.Join(", ", cert.Names), cert.NotAfter);
            return cert;
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            return Failed(source, ex.Message, lastGood);
        }
    }

    private LoadedCertificate? Failed(string source, string error, LoadedCertificate? lastGood)
    {
        Failures.Inc();
        _log.LogError("TLS certificate {Source} not loaded: {Error}{Keeping}",
            source, error, lastGood is null ? "" : "; its last good certificate keeps serving");
        return lastGood;
    }

    private void Publish()
    {
        var loaded = _files.Values.Select(v => v.Cert).Concat(_registry.Values.Select(v => v.Cert)).OfType<LoadedCertificate>().ToList();
        Volatile.Write(ref _store, new CertificateStore(loaded, _defaultName));
        Loaded.Set(loaded.Count);
        foreach (var c in loaded) Expiry.WithLabels(c.Source).Set((c.NotAfter - DateTime.UtcNow).TotalSeconds);
    }

    public override void Dispose()
    {
        _subscription?.Dispose();
        base.Dispose();
    }
}
