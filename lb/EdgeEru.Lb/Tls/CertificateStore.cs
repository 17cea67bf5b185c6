using System.Collections.Frozen;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace EdgeEru.Lb.Tls;

/// <summary>One loaded certificate: where it came from, the names it serves, and the context TLS hands out.</summary>
internal sealed record LoadedCertificate(
    string Source, string[] Names, DateTime NotAfter, X509Certificate2 Leaf, SslStreamCertificateContext Context);

/// <summary>
/// The certificates TLS termination picks from by SNI, indexed by the DNS names in each certificate:
/// the exact name first, then the wildcard one label up (<c>*.example.com</c> serves <c>a.example.com</c>,
/// not <c>a.b.example.com</c>), then the default. Immutable; a reload builds a new store.
/// </summary>
internal sealed class CertificateStore
{
    private readonly FrozenDictionary<string, LoadedCertificate> _byName;

    public CertificateStore(IReadOnlyList<LoadedCertificate> certificates, string? defaultName = null)
    {
        Certificates = certificates;
        var byName = new Dictionary<string, LoadedCertificate>(StringComparer.OrdinalIgnoreCase);
        // Sorted by expiry so the longest-lived certificate wins a name two files share.
        foreach (var c in certificates.OrderBy(c => c.NotAfter))
            foreach (var n in c.Names) byName[n] = c;
        _byName = byName.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        Default = defaultName is not null && byName.TryGetValue(defaultName, out var d) ? d
            : certificates.Count == 1 ? certificates[0] : null;
    }

    public static readonly CertificateStore Empty = new([]);

    public IReadOnlyList<LoadedCertificate> Certificates { get; }

    /// <summary>Served to clients that send no SNI or a name no certificate has.</summary>
    public LoadedCertificate? Default { get; }

    public LoadedCertificate? Select(string? serverName)
    {
        if (string.IsNullOrEmpty(serverName)) return Default;
        if (_byName.TryGetValue(serverName, out var c)) return c;
        var dot = serverName.IndexOf('.', StringComparison.Ordinal);
        if (dot > 0 && _byName.TryGetValue(string.Concat("*", serverName.AsSpan(dot)), out c)) return c;
        return Default;
    }

    /// <summary>Loads a PEM certificate (leaf first, then its chain) and its PEM private key.</summary>
    public static LoadedCertificate Load(string source, string certificatePem, string keyPem)
    {
        var leaf = X509Certificate2.CreateFromPem(certificatePem, keyPem);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(certificatePem);
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
            if (c.Thumbprint != leaf.Thumbprint) intermediates.Add(c);
        var names = DnsNames(leaf);
        if (names.Length == 0) throw new ArgumentException("the certificate names no DNS host (subject alternative names or CN)");
        var context = SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
        return new LoadedCertificate(source, names, leaf.NotAfter.ToUniversalTime(), leaf, context);
    }

    private static string[] DnsNames(X509Certificate2 cert)
    {
        var names = new List<string>();
        foreach (var ext in cert.Extensions)
            if (ext is X509SubjectAlternativeNameExtension san)
                names.AddRange(san.EnumerateDnsNames());
        if (names.Count == 0 && cert.GetNameInfo(X509NameType.DnsName, forIssuer: false) is { Length: > 0 } cn) names.Add(cn);
        return [.. names.Distinct(StringComparer.OrdinalIgnoreCase)];
    }
}
