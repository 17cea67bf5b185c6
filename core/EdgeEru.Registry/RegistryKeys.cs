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
    }

    public string Prefix { get; }

    /// <summary>The prefix with its trailing slash: every registry key starts with it.</summary>
    public string Root { get; }

    public string Key(RegistryKind kind, string name)
    {
        if (!Names.IsId(name) && !Names.IsDomain(name))
            throw new ArgumentException($"\"{name}\" is not a valid {kind.Segment} name", nameof(name));
        return Root + kind.Segment + "/" + name;
    }

    public string KindPrefix(RegistryKind kind) => Root + kind.Segment + "/";

    /// <summary>Splits a key into its kind and name; false for keys of no known kind.</summary>
    public bool TryParse(string key, out RegistryKind kind, out string name)
    {
        kind = null!;
        name = "";
        if (!key.StartsWith(Root, StringComparison.Ordinal)) return false;
        var rest = key.AsSpan(Root.Length);
        foreach (var k in Kinds.All)
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
