using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// A TLS certificate for the LB (<c>lb/certs/{name}</c>): the PEM chain (leaf first) and its PEM private key.
/// The LB serves it for the DNS names inside it, chosen by SNI. The registry checks the shape; the LB (and
/// its admin API, before storing) parses it and keeps the last good one when a stored value does not load.
/// </summary>
public sealed record LbCertificate : IRegistryRecord
{
    public int V { get; set; } = 1;

    public required string Name { get; init; }

    /// <summary>PEM: the certificate, then its intermediates.</summary>
    public required string Certificate { get; init; }

    /// <summary>PEM private key of the leaf certificate.</summary>
    public required string Key { get; init; }

    /// <summary>Set when eru-lb ordered it by ACME for a domain's <c>acme</c> block (docs/lb.md, ACME).</summary>
    public LbCertificateAcme? Acme { get; init; }

    [JsonIgnore] public string KeyName => Name;

    /// <summary>The name of the certificate eru-lb orders by ACME for <paramref name="domain"/>.</summary>
    public static string AcmeNameFor(string domain) => "acme-" + domain;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Name.Length is > 0 and <= 253 && Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'),
            $"certificate name \"{Name}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Certificate.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal),
            $"certificate {Name}: certificate is not PEM (no BEGIN CERTIFICATE)");
        Names.Require(e, Key.Contains("PRIVATE KEY-----", StringComparison.Ordinal), $"certificate {Name}: key is not a PEM private key");
        if (Acme is not null)
            Names.Require(e, Names.IsDomain(Acme.Domain) && !Acme.Domain.StartsWith("*.", StringComparison.Ordinal),
                $"certificate {Name}: acme.domain \"{Acme.Domain}\" must be a host name");
        return e;
    }
}
