using System.Security.Cryptography;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Core.Secrets;

/// <summary>Who is calling Core: a token's name (in the audit log) and its scopes.</summary>
public sealed record Caller(string Name, IReadOnlyList<string> Scopes)
{
    /// <summary>The name of Core's own token, <c>Core:Token</c>, which is admin (and no stored token may take it).</summary>
    public const string BootstrapName = "bootstrap";

    public static Caller Bootstrap { get; } = new(BootstrapName, [TokenScopes.Admin]);
}

/// <summary>
/// The token string a client presents: <c>eru.NAME.SECRET</c>, the secret 32 random bytes in base64url. The name
/// is in it so that Core finds the record with one read, without an index of hashes.
/// </summary>
public static class TokenSecret
{
    public const string Prefix = "eru.";
    public const int SecretBytes = 32;

    /// <summary>A new token string for <paramref name="name"/> and the SHA-256 of its secret (what is stored).</summary>
    public static (string Token, byte[] Sha256) New(string name)
    {
        var secret = RandomNumberGenerator.GetBytes(SecretBytes);
        return (Prefix + name + "." + Base64Url(secret), SHA256.HashData(secret));
    }

    /// <summary>Splits a presented token; false for anything not shaped as one (a bootstrap token, garbage).</summary>
    public static bool TryParse(string token, out string name, out byte[] secret)
    {
        (name, secret) = ("", []);
        if (!token.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        var dot = token.IndexOf('.', Prefix.Length);
        if (dot < 0 || !Names.IsLabel(token[Prefix.Length..dot])) return false;
        var encoded = token[(dot + 1)..].Replace('-', '+').Replace('_', '/');
        var bytes = new byte[SecretBytes];
        if (encoded.Length != 43 || !Convert.TryFromBase64String(encoded + "=", bytes, out var n) || n != SecretBytes) return false;
        (name, secret) = (token[Prefix.Length..dot], bytes);
        return true;
    }

    /// <summary>Whether <paramref name="secret"/> is the stored token's, in constant time.</summary>
    public static bool Matches(ApiToken stored, ReadOnlySpan<byte> secret) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(secret), stored.SecretSha256);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>
/// Core's API tokens in the private part of the registry (<c>tokens/{name}</c>), hashed. Core reads a token's key
/// on every call it authenticates: one point read is cheap next to any call, and a revocation or a token made by
/// another replica counts at once (Core's watcher follows the followers' prefix, never the private root).
/// </summary>
public sealed class TokenStore(RegistryStore store, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Makes a token; null when the name is taken. The returned string is the only copy of its secret.</summary>
    public async Task<(ApiToken Token, string Secret)?> CreateAsync(
        string name, IReadOnlyList<string> scopes, TimeSpan? ttl, string createdBy, CancellationToken ct = default)
    {
        var problems = new List<string>();
        if (!Names.IsLabel(name)) problems.Add($"token name \"{name}\" must be a DNS label (1-63 of a-z 0-9 -)");
        if (name == Caller.BootstrapName) problems.Add($"token name \"{name}\" is Core:Token's");
        if (scopes.Count == 0) problems.Add("give at least one scope: read, deploy:APP or admin");
        problems.AddRange(scopes.Where(s => !TokenScopes.IsValid(s)).Select(s => $"scope \"{s}\" must be read, deploy:APP or admin"));
        if (ttl is not null && ttl <= TimeSpan.Zero) problems.Add("ttl must be positive (or none: never expires)");
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
        var (secret, sha256) = TokenSecret.New(name);
        var now = _time.GetUtcNow();
        var token = new ApiToken
        {
            Name = name, SecretSha256 = sha256, Scopes = [.. scopes.Distinct(StringComparer.Ordinal)], CreatedAt = now,
            ExpiresAt = ttl is { } t ? now + t : null, CreatedBy = createdBy,
        };
        return await store.CreateAsync(Kinds.Tokens, token, ct: ct) ? (token, secret) : null;
    }

    public async Task<IReadOnlyList<ApiToken>> ListAsync(CancellationToken ct = default) =>
        [.. (await store.ListAsync(Kinds.Tokens, ct: ct)).Items.Select(t => t.Value).OrderBy(t => t.Name, StringComparer.Ordinal)];

    public Task<bool> RevokeAsync(string name, CancellationToken ct = default) =>
        Names.IsLabel(name) ? store.DeleteAsync(Kinds.Tokens, name, ct)
            : throw new ArgumentException($"token name \"{name}\" must be a DNS label (1-63 of a-z 0-9 -)");

    public bool IsExpired(ApiToken token) => token.ExpiresAt is { } at && at <= _time.GetUtcNow();

    /// <summary>The caller a presented token stands for, or why it is refused (the message never holds a secret).</summary>
    public async Task<(Caller? Caller, string? Refusal)> AuthenticateAsync(string presented, CancellationToken ct = default)
    {
        if (!TokenSecret.TryParse(presented, out var name, out var secret)) return (null, "the token is not valid");
        var stored = await store.GetAsync(Kinds.Tokens, name, ct);
        // Unknown, revoked and wrong secret read the same: the caller learns nothing it could try again with.
        if (stored is null || !TokenSecret.Matches(stored.Value, secret)) return (null, $"token {name} is not valid (revoked or unknown)");
        if (IsExpired(stored.Value)) return (null, $"token {name} expired at {stored.Value.ExpiresAt:O}");
        return (new Caller(name, stored.Value.Scopes), null);
    }
}
