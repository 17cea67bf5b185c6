using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Core.Secrets;

/// <summary>A secret as listed: never its content.</summary>
public sealed record SecretInfo(string Name, int Size, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, IReadOnlyList<string> UsedBy);

/// <summary>Registry credentials as listed: never the password.</summary>
public sealed record RegistryAuthInfo(string Host, string User, DateTimeOffset UpdatedAt);

/// <summary>
/// Secrets and registry credentials in the private part of the registry, sealed with Core's key. Only
/// Core holds the key and only Core's etcd user reads the private root (docs/registry.md): the CLI and
/// every other service go through Core's API, which never returns a secret's content.
/// </summary>
public sealed class SecretStore(RegistryStore store, SecretBox? box)
{
    private SecretBox Box => box ?? throw new SecretsUnavailableException();

    /// <summary>Whether Core has a key (without one, secrets can be neither stored nor read).</summary>
    public bool Enabled => box is not null;

    public async Task<SecretInfo> SetAsync(string name, byte[] content, CancellationToken ct = default)
    {
        if (!Names.IsId(name)) throw new ArgumentException($"secret name \"{name}\" must be 1-253 of [A-Za-z0-9._-]");
        if (content.Length > SecretLimits.MaxBytes)
            throw new ArgumentException($"secret {name} is {content.Length} bytes; at most {SecretLimits.MaxBytes} are kept");
        var sealedValue = Box.Seal(content, name);
        var now = DateTimeOffset.UtcNow;
        var written = await store.UpdateAsync(Kinds.Secrets, name, old => new Secret
        {
            Name = name, Sealed = sealedValue, Size = content.Length, CreatedAt = old?.CreatedAt ?? now, UpdatedAt = now,
        }, ct: ct);
        return new SecretInfo(name, content.Length, written!.CreatedAt, written.UpdatedAt, []);
    }

    public async Task<IReadOnlyList<SecretInfo>> ListAsync(CancellationToken ct = default)
    {
        var (secrets, _) = await store.ListAsync(Kinds.Secrets, ct: ct);
        var users = await UsersAsync(ct);
        return [.. secrets.Select(s => new SecretInfo(s.Value.Name, s.Value.Size, s.Value.CreatedAt, s.Value.UpdatedAt,
            users.TryGetValue(s.Value.Name, out var u) ? u : []))];
    }

    /// <summary>Removes a secret; one still written into a workload is kept unless <paramref name="force"/>.</summary>
    public async Task<bool> RemoveAsync(string name, bool force, CancellationToken ct = default)
    {
        if (!force && (await UsersAsync(ct)).TryGetValue(name, out var users))
            throw new InvalidOperationException(
                $"secret {name} is used by {users.Count} workload(s) ({string.Join(", ", users.Take(3))}); " +
                "remove them first, or force (the containers keep their copy)");
        return await store.DeleteAsync(Kinds.Secrets, name, ct);
    }

    /// <summary>The content of secrets, for Core to write into a container; NOT_FOUND names the first missing one.</summary>
    public async Task<IReadOnlyDictionary<string, byte[]>> ReadAsync(IEnumerable<string> names, CancellationToken ct = default)
    {
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in names.Distinct(StringComparer.Ordinal))
        {
            var secret = await store.GetAsync(Kinds.Secrets, name, ct)
                ?? throw new KeyNotFoundException($"secret {name} does not exist (eru secret set {name} --from-file FILE)");
            result[name] = Box.Open(secret.Value.Sealed, name);
        }
        return result;
    }

    public async Task<RegistryAuthInfo> SetRegistryAuthAsync(string host, string user, string password, CancellationToken ct = default)
    {
        if (!RegistryAuth.IsHost(host))
            throw new ArgumentException($"registry host \"{host}\" must be a host name or IPv4 address with an optional :port");
        if (user.Length is 0 or > 256 || user.Any(char.IsControl))
            throw new ArgumentException("registry user must be 1-256 printable characters");
        if (password.Length is 0 or > 4096) throw new ArgumentException("registry password must be 1-4096 characters");
        var auth = new RegistryAuth
        {
            Host = host, User = user, Sealed = Box.Seal(System.Text.Encoding.UTF8.GetBytes(password), host),
            UpdatedAt = DateTimeOffset.UtcNow,
        };
        await store.PutAsync(Kinds.RegistryAuths, auth, ct: ct);
        return new RegistryAuthInfo(host, user, auth.UpdatedAt);
    }

    public async Task<IReadOnlyList<RegistryAuthInfo>> ListRegistryAuthAsync(CancellationToken ct = default) =>
        [.. (await store.ListAsync(Kinds.RegistryAuths, ct: ct)).Items
            .Select(a => new RegistryAuthInfo(a.Value.Host, a.Value.User, a.Value.UpdatedAt))];

    public Task<bool> RemoveRegistryAuthAsync(string host, CancellationToken ct = default) =>
        RegistryAuth.IsHost(host) ? store.DeleteAsync(Kinds.RegistryAuths, RegistryAuth.KeyFor(host), ct)
            : throw new ArgumentException($"registry host \"{host}\" must be a host name or IPv4 address with an optional :port");

    /// <summary>"user:password" for the registry <paramref name="image"/> comes from, or null when none is stored (or no key).</summary>
    public async Task<string?> CredentialsForAsync(string image, CancellationToken ct = default)
    {
        if (box is null || RegistryAuth.HostOf(image) is not { } host) return null;
        if (await store.GetAsync(Kinds.RegistryAuths, RegistryAuth.KeyFor(host), ct) is not { } auth) return null;
        return auth.Value.User + ":" + System.Text.Encoding.UTF8.GetString(box.Open(auth.Value.Sealed, host));
    }

    /// <summary>Secret name → names of the workloads it was written into.</summary>
    private async Task<Dictionary<string, List<string>>> UsersAsync(CancellationToken ct)
    {
        var users = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var w in (await store.ListAsync(Kinds.Workloads, ct: ct)).Items)
            foreach (var s in w.Value.Secrets ?? [])
            {
                if (!users.TryGetValue(s, out var list)) users[s] = list = [];
                list.Add(w.Value.Name);
            }
        return users;
    }
}

/// <summary>Core runs without a secrets key: secrets and registry credentials cannot be used.</summary>
public sealed class SecretsUnavailableException()
    : InvalidOperationException(
        "eru-core has no secrets key (Core:SecretsKeyFile): secrets and registry credentials cannot be stored or read");
