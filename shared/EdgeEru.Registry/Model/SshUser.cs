using System.Text.Json.Serialization;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// A person who may log in through the SSH gateway (<c>ssh/users/{user}</c>): the public keys they log in with,
/// as OpenSSH authorized_keys lines, and the apps whose containers they may enter, each with what they may do there.
/// </summary>
public sealed record SshUser : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }

    /// <summary>OpenSSH authorized_keys lines (<c>ssh-ed25519 AAAA… comment</c>), one key each.</summary>
    public string[] Keys { get; set; } = [];

    /// <summary>App name (or <c>*</c> for every app) → access. An app not listed cannot be entered.</summary>
    public Dictionary<string, SshAppAccess> Apps { get; set; } = [];

    [JsonIgnore] public string KeyName => Name;

    /// <summary>The access to <paramref name="app"/>: its own entry, else the <c>*</c> entry, else none.</summary>
    public SshAppAccess? AccessTo(string app) =>
        Apps.TryGetValue(app, out var a) ? a : Apps.TryGetValue(AnyApp, out var any) ? any : null;

    public const string AnyApp = "*";

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsUser(Name),
            $"ssh user name \"{Name}\" must be a login name (a-z, 0-9, '.', '_', '-', at most 32, starting with a letter or '_')");
        for (var i = 0; i < Keys.Length; i++)
        {
            var problem = KeyLineProblem(Keys[i]);
            Names.Require(e, problem is null, $"ssh user {Name}: key {i + 1}: {problem}");
        }
        foreach (var (app, access) in Apps)
        {
            Names.Require(e, app == AnyApp || Names.IsLabel(app), $"ssh user {Name}: app \"{app}\" must be a DNS label or *");
            Names.Require(e, access.User is null || IsContainerUser(access.User),
                $"ssh user {Name}: app {app}: container user \"{access.User}\" must be name, uid, name:group or uid:gid");
        }
        return e;
    }

    private static readonly string[] KeyTypes =
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

    /// <summary>
    /// A light check of an authorized_keys line (the gateway parses the key itself): one line, a supported key type
    /// followed by base64 whose blob names the same type. Options before the type are allowed.
    /// </summary>
    public static string? KeyLineProblem(string line)
    {
        if (string.IsNullOrWhiteSpace(line)) return "empty";
        if (line.Contains('\n') || line.Contains('\r')) return "more than one line";
        var tokens = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var at = Array.FindIndex(tokens, t => KeyTypes.Contains(t));
        if (at < 0 || at + 1 >= tokens.Length) return $"no key type of {string.Join(", ", KeyTypes)} followed by base64 key data";
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(tokens[at + 1]);
        }
        catch (FormatException)
        {
            return "key data is not base64";
        }
        var type = System.Text.Encoding.ASCII.GetBytes(tokens[at]);
        var ok = blob.Length > 4 + type.Length && System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob) == type.Length
                 && blob.AsSpan(4, type.Length).SequenceEqual(type);
        return ok ? null : $"key data does not hold a {tokens[at]} key";
    }

    private static bool IsContainerUser(string s)
    {
        var parts = s.Split(':');
        return parts.Length is 1 or 2
            && parts.All(p => p.Length is > 0 and <= 32 && p.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'));
    }
}

/// <summary>What a user may do in one app's containers.</summary>
public sealed record SshAppAccess
{
    /// <summary>True: interactive shells and commands; false: commands only (exec).</summary>
    public bool Shell { get; set; } = true;

    /// <summary>The user the session runs as inside the container (Docker exec's user); null: the image's user.</summary>
    [JsonConverter(typeof(PooledStringConverter))] public string? User { get; init; }
}
