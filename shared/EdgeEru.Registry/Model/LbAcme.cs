using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// An LB domain's request for a certificate by ACME (RFC 8555): the CA's directory URL and the contact
/// address of the account. eru-lb orders it, answers HTTP-01 on its plain port and stores the result as
/// <c>lb/certs/acme-{domain}</c>.
/// </summary>
public sealed record LbAcme
{
    /// <summary>The CA's directory, e.g. https://acme-v02.api.letsencrypt.org/directory.</summary>
    public required string Directory { get; init; }

    /// <summary>Contact of the ACME account (mailto: is added).</summary>
    public required string Email { get; init; }

    public IEnumerable<string> Problems()
    {
        if (!Uri.TryCreate(Directory, UriKind.Absolute, out var u) || u.Scheme != Uri.UriSchemeHttps)
            yield return $"acme.directory \"{Directory}\" must be an absolute https:// URL";
        var at = Email.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0 || at != Email.LastIndexOf('@') || !Names.IsDomain(Email[(at + 1)..])
            || Email.Any(c => c <= ' ' || c is ',' or '<' or '>'))
            yield return $"acme.email \"{Email}\" must be an address like ops@example.com";
    }
}

/// <summary>What an ACME-issued <see cref="LbCertificate"/> carries beside the PEM: its domain and when it is renewed.</summary>
public sealed record LbCertificateAcme
{
    public required string Domain { get; init; }

    /// <summary>Two thirds into the certificate's lifetime: when a replica orders the next one.</summary>
    public DateTimeOffset RenewAt { get; init; }
}

/// <summary>
/// An ACME account (<c>{prefix}-private/lb/acme-accounts/{name}</c>): its ES256 key (PKCS#8 PEM) and, once
/// registered, its URL at the CA. Private: the key signs every order; only eru-lb's etcd user reads it.
/// </summary>
public sealed record LbAcmeAccount : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }
    public required string Directory { get; init; }
    public required string Email { get; init; }
    public required string Key { get; init; }

    /// <summary>The account's URL (the JWS "kid"); absent until the CA created the account.</summary>
    public string? Url { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    [JsonIgnore] public string KeyName => Name;

    /// <summary>One account per CA and address: a name that is the same for every replica.</summary>
    public static string NameFor(string directory, string email) =>
        "acct-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(directory + "\n" + email.ToLowerInvariant())))[..20];

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Name), $"acme account name \"{Name}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Key.Contains("PRIVATE KEY-----", StringComparison.Ordinal), $"acme account {Name}: key is not a PEM private key");
        Names.Require(e, Url is null || Uri.TryCreate(Url, UriKind.Absolute, out _),
            $"acme account {Name}: url \"{Url}\" is not absolute");
        e.AddRange(new LbAcme { Directory = Directory, Email = Email }.Problems().Select(p => $"acme account {Name}: {p}"));
        return e;
    }
}

/// <summary>
/// A pending HTTP-01 challenge (<c>{prefix}-private/lb/acme-challenges/{token}</c>): every replica answers
/// <c>/.well-known/acme-challenge/{token}</c> with <see cref="KeyAuthorization"/>, so the CA may ask any of them.
/// Written under the ordering replica's lease: it goes away with the order.
/// </summary>
public sealed record LbAcmeChallenge : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Token { get; init; }
    public required string KeyAuthorization { get; init; }
    public required string Domain { get; init; }

    [JsonIgnore] public string KeyName => Token;

    /// <summary>A token as RFC 8555 makes them: base64url, at least 128 bits.</summary>
    public static bool IsToken(string? s) =>
        s is { Length: >= 22 and <= 128 } && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, IsToken(Token), $"acme challenge token \"{Token}\" must be 22-128 base64url characters");
        Names.Require(e, KeyAuthorization.StartsWith(Token + ".", StringComparison.Ordinal) && KeyAuthorization.Length > Token.Length + 1,
            $"acme challenge {Token}: key_authorization must be the token, '.', and the account key's thumbprint");
        Names.Require(e, Names.IsDomain(Domain), $"acme challenge {Token}: domain \"{Domain}\" is not a host name");
        return e;
    }
}

/// <summary>
/// The lock only one eru-lb replica holds while it orders (<c>{prefix}-private/lb/acme-locks/{name}</c>), under
/// that replica's lease: created only if absent, gone when the replica stops or dies.
/// </summary>
public sealed record LbAcmeLock : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }

    /// <summary>Which replica holds it (host and process), for people reading etcd.</summary>
    public required string Holder { get; init; }

    public DateTimeOffset Since { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Name), $"acme lock name \"{Name}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Holder.Length is > 0 and <= 256, $"acme lock {Name}: holder must be 1-256 characters");
        return e;
    }
}

/// <summary>
/// Failed orders of a domain in a row (<c>{prefix}-private/lb/acme-orders/{domain}</c>): shared by the replicas,
/// so the back-off holds for all of them, not per replica; deleted when an order succeeds.
/// </summary>
public sealed record LbAcmeOrderState : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Domain { get; init; }
    public int Failures { get; init; }

    /// <summary>What went wrong last, as the CA or the network said it.</summary>
    public required string LastError { get; init; }

    public DateTimeOffset LastAttemptAt { get; init; }

    /// <summary>No replica orders for the domain before this.</summary>
    public DateTimeOffset NextTryAt { get; init; }

    [JsonIgnore] public string KeyName => Domain;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsDomain(Domain) && !Domain.StartsWith("*.", StringComparison.Ordinal),
            $"acme order domain \"{Domain}\" must be a host name");
        Names.Require(e, Failures >= 1, $"acme order {Domain}: failures must be at least 1");
        Names.Require(e, LastError.Length <= 4096, $"acme order {Domain}: last_error must be at most 4096 characters");
        return e;
    }
}
