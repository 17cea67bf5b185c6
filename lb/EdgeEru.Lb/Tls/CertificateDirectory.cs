using Prometheus;

namespace EdgeEru.Lb.Tls;

/// <summary>
/// The certificates of <c>Lb:Tls:Certificates</c>, a directory of PEM pairs (<c>NAME.crt</c> with the chain,
/// <c>NAME.key</c>), each serving the DNS names inside it. Checked every <c>Lb:Tls:ReloadSeconds</c> for
/// added, changed or removed files and swapped without a restart; a pair that fails to load is reported
/// and, when it loaded before, keeps serving its last good certificate.
/// </summary>
internal sealed class CertificateDirectory : BackgroundService
{
    private static readonly Gauge Loaded = Metrics.CreateGauge("eru_lb_tls_certificates", "Certificates loaded for TLS termination.");
    private static readonly Counter Failures = Metrics.CreateCounter("eru_lb_tls_certificate_failures_total", "Certificate files that failed to load.");
    private static readonly Gauge Expiry = Metrics.CreateGauge("eru_lb_tls_certificate_expiry_seconds", "Seconds until a certificate expires.",
        new GaugeConfiguration { LabelNames = ["source"] });

    private readonly string? _directory;
    private readonly string? _defaultName;
    private readonly TimeSpan _period;
    private readonly ILogger<CertificateDirectory> _log;
    private Dictionary<string, (DateTime Crt, DateTime Key, LoadedCertificate? Cert)> _seen = [];
    private CertificateStore _store = CertificateStore.Empty;

    public CertificateDirectory(IConfiguration config, ILogger<CertificateDirectory> log)
    {
        _directory = config["Lb:Tls:Certificates"];
        _defaultName = config["Lb:Tls:DefaultName"];
        _period = TimeSpan.FromSeconds(Math.Clamp(config.GetValue("Lb:Tls:ReloadSeconds", 5.0), 0.1, 3600));
        _log = log;
        if (_directory is not null) Reload(); // before Kestrel takes its first handshake
    }

    public CertificateStore Current => Volatile.Read(ref _store);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_directory is null) return;
        using var timer = new PeriodicTimer(_period);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) Reload();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Loads what changed since the last look; returns true when the store was replaced.</summary>
    public bool Reload()
    {
        if (_directory is null) return false;
        string[] files;
        try
        {
            files = Directory.GetFiles(_directory, "*.crt");
        }
        catch (IOException ex)
        {
            _log.LogError("TLS certificates: cannot read {Directory}: {Error}; keeping the {Count} loaded", _directory, ex.Message, Current.Certificates.Count);
            return false;
        }
        catch (UnauthorizedAccessException ex)
        {
            _log.LogError("TLS certificates: cannot read {Directory}: {Error}; keeping the {Count} loaded", _directory, ex.Message, Current.Certificates.Count);
            return false;
        }
        var next = new Dictionary<string, (DateTime, DateTime, LoadedCertificate?)>(StringComparer.Ordinal);
        var changed = false;
        foreach (var crt in files)
        {
            var key = Path.ChangeExtension(crt, ".key");
            var stamp = (File.GetLastWriteTimeUtc(crt), File.GetLastWriteTimeUtc(key));
            _seen.TryGetValue(crt, out var before);
            if (before.Crt == stamp.Item1 && before.Key == stamp.Item2)
            {
                next[crt] = before;
                continue;
            }
            changed = true;
            try
            {
                if (!File.Exists(key)) throw new FileNotFoundException($"no private key {Path.GetFileName(key)} beside it");
                var cert = CertificateStore.Load(Path.GetFileName(crt), File.ReadAllText(crt), File.ReadAllText(key));
                next[crt] = (stamp.Item1, stamp.Item2, cert);
                _log.LogInformation("TLS certificate {File} loaded for {Names}, valid until {NotAfter:u}", Path.GetFileName(crt), string.Join(", ", cert.Names), cert.NotAfter);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                Failures.Inc();
                next[crt] = (stamp.Item1, stamp.Item2, before.Cert); // keep its last good certificate, if any
                _log.LogError("TLS certificate {File} not loaded: {Error}{Keeping}", Path.GetFileName(crt), ex.Message,
                    before.Cert is null ? "" : "; its last good certificate keeps serving");
            }
        }
        if (next.Count != _seen.Count) changed = true;
        if (!changed) return false;
        _seen = next;
        var loaded = next.Values.Where(v => v.Item3 is not null).Select(v => v.Item3!).ToList();
        Volatile.Write(ref _store, new CertificateStore(loaded, _defaultName));
        Loaded.Set(loaded.Count);
        foreach (var c in loaded) Expiry.WithLabels(c.Source).Set((c.NotAfter - DateTime.UtcNow).TotalSeconds);
        return true;
    }
}
