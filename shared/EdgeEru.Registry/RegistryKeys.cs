using EdgeEru.Registry.Model;

namespace EdgeEru.Registry;

/// <summary>The key layout: <c>{prefix}/{kind segment}/{name}</c>, prefix <c>/eru</c> by default.</summary>
public sealed class RegistryKeys
{
    public const string DefaultPrefix = "/eru";

    public RegistryKeys(string prefix = DefaultPrefix)
    {
        if (string.IsNullOrEmpty(prefix) || prefix[0] != '/' || prefix.EndsWith('/') || prefix.Contains("//", StringComparison.Ordinal))
            throw new ArgumentException($"registry prefix \"{prefix}\" must start with '/' and not end with '/'", nameof(prefix));
        Prefix = prefix;
        Root = prefix + "/";
        PrivateRoot = prefix + "-private/";
    }

    public string Prefix { get; }

    /// <summary>The prefix with its trailing slash: every registry key starts with it.</summary>
    public string Root { get; }

    /// <summary>
    /// Where private kinds live (<c>/eru-private/</c>): a sibling of <see cref="Root"/>, not inside it, so a
    /// role that reads the prefix (every follower's) cannot read them.
    /// </summary>
    public string PrivateRoot { get; }

    public string Key(RegistryKind kind, string name)
    {
        if (!Names.IsId(name) && !Names.IsDomain(name))
            throw new ArgumentException($"\"{name}\" is not a valid {kind.Segment} name", nameof(name));
        return KindPrefix(kind) + name;
    }

    public string KindPrefix(RegistryKind kind) => (kind.IsPrivate ? PrivateRoot : Root) + kind.Segment + "/";

    /// <summary>Splits a key (under the root or the private root) into its kind and name; false for keys of no known kind.</summary>
    public bool TryParse(string key, out RegistryKind kind, out string name)
    {
        kind = null!;
        name = "";
        var isPrivate = key.StartsWith(PrivateRoot, StringComparison.Ordinal);
        if (!isPrivate && !key.StartsWith(Root, StringComparison.Ordinal)) return false;
        var rest = key.AsSpan(isPrivate ? PrivateRoot.Length : Root.Length);
        foreach (var k in isPrivate ? Kinds.Private : Kinds.All)
        {
            if (rest.Length > k.Segment.Length + 1 && rest.StartsWith(k.Segment, StringComparison.Ordinal) && rest[k.Segment.Length] == '/')
            {
                var n = rest[(k.Segment.Length + 1)..];
                if (n.Contains('/')) return false;
                kind = k;
                name = n.ToString();
                return true;
            }
        }
        return false;
    }

    /// <summary>The etcd range_end that covers every key starting with <paramref name="prefix"/>.</summary>
    public static byte[] RangeEnd(ReadOnlySpan<byte> prefix)
    {
        var end = prefix.ToArray();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return end[..(i + 1)];
            }
        }
        return [0]; // all keys
    }
}
