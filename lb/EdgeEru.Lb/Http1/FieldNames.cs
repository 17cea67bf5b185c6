using System.Text;

namespace EdgeEru.Lb.Http1;

/// <summary>Header field names: which are hop-by-hop, and matching raw names without making strings of them.</summary>
internal static class FieldNames
{
    private static readonly string[] HopByHop =
        ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer"];

    /// <summary>Hop-by-hop headers: about this connection, never handed on (RFC 9110 §7.6.1).</summary>
    public static bool IsHopByHop(ReadOnlySpan<byte> name) => IsOneOf(HopByHop, name);

    public static bool IsHopByHop(string name)
    {
        foreach (var hop in HopByHop)
            if (name.Equals(hop, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    /// <summary>
    /// Whether <paramref name="name"/> (raw bytes) is one of <paramref name="names"/>, case-insensitively. A span,
    /// not an IEnumerable: this runs for every header, and an enumerator over an array would be an allocation each time.
    /// </summary>
    public static bool IsOneOf(ReadOnlySpan<string> names, ReadOnlySpan<byte> name)
    {
        foreach (var n in names)
            if (n.Length == name.Length && Ascii.EqualsIgnoreCase(name, n)) return true;
        return false;
    }

    private static readonly string[] Common =
    [
        "Content-Type", "Date", "Server", "Cache-Control", "ETag", "Last-Modified", "Expires", "Location", "Set-Cookie", "Vary",
        "Content-Encoding", "Accept-Ranges", "Connection", "Keep-Alive", "Transfer-Encoding", "Access-Control-Allow-Origin",
        "Content-Language", "Content-Disposition", "Strict-Transport-Security", "X-Content-Type-Options", "Age", "Pragma",
    ];

    /// <summary>The name as a string, without allocating for the common ones.</summary>
    public static string AsString(ReadOnlySpan<byte> raw)
    {
        foreach (var known in Common)
            if (known.Length == raw.Length && Ascii.EqualsIgnoreCase(raw, known)) return known;
        return Encoding.ASCII.GetString(raw);
    }
}
