using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Lb.Admin;

/// <summary>
/// A line of <c>GET /api/certificates</c> (and <c>eru lb cert ls</c>): where a certificate comes from, its names,
/// issuer and expiry; for an ACME one, its domain, when it is next ordered and the last failure, if any.
/// </summary>
internal sealed record CertificateListing(
    string Source, string[] Names, string? Issuer, DateTime? NotAfter, string? AcmeDomain, DateTimeOffset? NextRenewal,
    int? Failures, string? LastError)
{
    /// <summary>Pure: the loaded certificates, the snapshot's domains and certificates, the order states.</summary>
    public static IReadOnlyList<CertificateListing> Of(
        IReadOnlyList<Tls.LoadedCertificate> loaded, RegistrySnapshot snapshot, IReadOnlyList<LbAcmeOrderState> orders)
    {
        var failures = orders.ToDictionary(o => o.Domain, StringComparer.OrdinalIgnoreCase);
        var list = new List<CertificateListing>();
        foreach (var c in loaded)
        {
            var name = c.Source.StartsWith("registry:", StringComparison.Ordinal) ? c.Source["registry:".Length..] : null;
            var acme = name is not null && snapshot.LbCertificates.TryGetValue(name, out var record) ? record.Acme : null;
            list.Add(acme is null
                ? new CertificateListing(c.Source, c.Names, c.Leaf.Issuer, c.NotAfter, null, null, null, null)
                : Acme(c.Source, c.Names, c.Leaf.Issuer, c.NotAfter, acme.Domain, acme.RenewAt, failures));
        }
        // Domains still waiting for their first certificate (or whose stored one does not load).
        foreach (var d in snapshot.LbDomains.Values)
        {
            var source = "registry:" + LbCertificate.AcmeNameFor(d.Name);
            if (d.Acme is null || list.Any(l => l.Source == source)) continue;
            list.Add(Acme(source, [d.Name], null, null, d.Name, null, failures));
        }
        return [.. list.OrderBy(l => l.Source, StringComparer.Ordinal)];
    }

    private static CertificateListing Acme(string source, string[] names, string? issuer, DateTime? notAfter, string domain,
        DateTimeOffset? renewAt, Dictionary<string, LbAcmeOrderState> failures)
    {
        failures.TryGetValue(domain, out var failed);
        // The next order: the renewal time, or the back-off's next try when that is later; none yet: at the next look.
        var next = failed is not null && (renewAt is null || failed.NextTryAt > renewAt) ? failed.NextTryAt : renewAt;
        return new CertificateListing(source, names, issuer, notAfter, domain, next, failed?.Failures, failed?.LastError);
    }
}
