using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// A secret (<c>{prefix}-private/secrets/{name}</c>): bytes Core writes into containers as files. Kept
/// outside the followers' range so that only Core's etcd user can read it, and sealed with Core's key
/// (AES-256-GCM, the name as associated data) so that an etcd backup or a stray read does not reveal it.
/// </summary>
public sealed record Secret : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }

    /// <summary>The sealed value: nonce, ciphertext and tag (base64 in JSON).</summary>
    public required byte[] Sealed { get; init; }

    /// <summary>Plaintext length in bytes (listed, never the content).</summary>
    public int Size { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Name), $"secret name \"{Name}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Sealed.Length >= 28, $"secret {Name}: the sealed value is too short to hold a nonce and a tag");
        Names.Require(e, Size is >= 0 and <= SecretLimits.MaxBytes, $"secret {Name}: size {Size} is outside 0-{SecretLimits.MaxBytes}");
        return e;
    }
}

/// <summary>
/// Credentials for an image registry (<c>{prefix}-private/registry-auth/{host}</c>, ':' in the host
/// stored as '_'): Core uses them to pull (and push) images whose name starts with that host.
/// </summary>
public sealed record RegistryAuth : IRegistryRecord
{
    public int V { get; set; } = 1;

    /// <summary>"registry.example.com" or "198.18.0.254:5000", as it starts image names.</summary>
    public required string Host { get; init; }
    public required string User { get; init; }

    /// <summary>The password, sealed like a secret (the host as associated data).</summary>
    public required byte[] Sealed { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }

    [JsonIgnore] public string KeyName => KeyFor(Host);

    /// <summary>The key name of a host: ports are written host_port (keys allow no ':').</summary>
    public static string KeyFor(string host) => host.Replace(':', '_');

    /// <summary>
    /// The registry host an image name starts with (Docker's rule: a first part with '.', ':' or
    /// "localhost"); null for Docker Hub names like "busybox" or "library/nginx".
    /// </summary>
    public static string? HostOf(string image)
    {
        var slash = image.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0) return null;
        var first = image[..slash];
        return first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost"
            ? first
            : null;
    }

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, IsHost(Host), $"registry host \"{Host}\" must be a host name or address, with an optional :port");
        Names.Require(e, User.Length is > 0 and <= 256 && !User.Any(char.IsControl),
            $"registry-auth {Host}: user must be 1-256 printable characters");
        Names.Require(e, Sealed.Length >= 28, $"registry-auth {Host}: the sealed password is too short to hold a nonce and a tag");
        return e;
    }

    public static bool IsHost(string? host)
    {
        if (string.IsNullOrEmpty(host) || host.Length > 253) return false;
        var colon = host.LastIndexOf(':');
        var name = colon < 0 ? host : host[..colon];
        if (colon >= 0 && !(ushort.TryParse(host[(colon + 1)..], out var port) && port > 0)) return false;
        return Names.IsDomain(name) && !name.StartsWith("*.", StringComparison.Ordinal)
            || System.Net.IPAddress.TryParse(name, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
    }
}

/// <summary>
/// An API token of Core (<c>{prefix}-private/tokens/{name}</c>): who may call which of Core's methods. Only the
/// SHA-256 of its secret is kept: the secret is 32 random bytes, too many to guess, so a plain fast hash is as
/// safe as a slow one and lets Core check every call cheaply; a leak of etcd reveals no usable token.
/// </summary>
public sealed record ApiToken : IRegistryRecord
{
    public int V { get; set; } = 1;

    /// <summary>A DNS label: it appears in the token string itself (<c>eru.NAME.SECRET</c>) and in the audit log.</summary>
    public required string Name { get; init; }

    /// <summary>SHA-256 of the secret's 32 bytes (base64 in JSON).</summary>
    public required byte[] SecretSha256 { get; init; }

    /// <summary><c>read</c>, <c>deploy:APP</c> or <c>admin</c>; at least one.</summary>
    public string[] Scopes { get; set; } = [];

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Refused from then on; absent: never expires.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>The name of the token that created it (<c>bootstrap</c> for Core:Token).</summary>
    public required string CreatedBy { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Name), $"token name \"{Name}\" must be a DNS label (1-63 of a-z 0-9 -)");
        Names.Require(e, SecretSha256.Length == 32, $"token {Name}: secret_sha256 must be 32 bytes, not {SecretSha256.Length}");
        Names.Require(e, Scopes.Length is > 0 and <= 64, $"token {Name}: give 1-64 scopes");
        foreach (var s in Scopes)
            Names.Require(e, TokenScopes.IsValid(s), $"token {Name}: scope \"{s}\" must be read, deploy:APP or admin");
        Names.Require(e, Names.IsLabel(CreatedBy), $"token {Name}: created_by \"{CreatedBy}\" must be a token name");
        Names.Require(e, ExpiresAt is null || ExpiresAt > CreatedAt, $"token {Name}: expires_at must be after created_at");
        return e;
    }
}

/// <summary>The scopes a token may carry (docs/core.md): what each allows is Core's to decide.</summary>
public static class TokenScopes
{
    public const string Read = "read", Admin = "admin", DeployPrefix = "deploy:";

    public static bool IsValid(string? scope) =>
        scope is Read or Admin
        || scope is not null && scope.StartsWith(DeployPrefix, StringComparison.Ordinal) && Names.IsLabel(scope[DeployPrefix.Length..]);

    /// <summary>The app of a <c>deploy:APP</c> scope; null for any other.</summary>
    public static string? DeployApp(string scope) =>
        scope.StartsWith(DeployPrefix, StringComparison.Ordinal) ? scope[DeployPrefix.Length..] : null;
}

public static class SecretLimits
{
    /// <summary>A secret is a file for a container (a key, a password, a certificate), not a data set.</summary>
    public const int MaxBytes = 256 * 1024;
}
