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

public static class SecretLimits
{
    /// <summary>A secret is a file for a container (a key, a password, a certificate), not a data set.</summary>
    public const int MaxBytes = 256 * 1024;
}
