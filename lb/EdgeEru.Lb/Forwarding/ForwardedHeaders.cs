using System.Text;

namespace EdgeEru.Lb.Forwarding;

/// <summary>
/// The X-Forwarded-* headers the LB puts on every forwarded request, whichever way it goes (YARP or one of the
/// HTTP/1.1 ways): For gets the client appended to the chain it brought; Proto and Host are the LB's to say,
/// so a client's own are replaced.
/// </summary>
internal static class ForwardedHeaders
{
    public const string For = "X-Forwarded-For", Proto = "X-Forwarded-Proto", Host = "X-Forwarded-Host";

    /// <summary>A client's header of this name does not reach the workload as sent.</summary>
    public static bool IsOurs(string name) =>
        name.Equals(For, StringComparison.OrdinalIgnoreCase) || name.Equals(Proto, StringComparison.OrdinalIgnoreCase)
        || name.Equals(Host, StringComparison.OrdinalIgnoreCase);

    /// <summary>The same, of a name as raw bytes (the HTTP/1.1 fast path's).</summary>
    public static bool IsOurs(ReadOnlySpan<byte> name) =>
        Ascii.EqualsIgnoreCase(name, For) || Ascii.EqualsIgnoreCase(name, Proto) || Ascii.EqualsIgnoreCase(name, Host);

    public static bool IsFor(string name) => name.Equals(For, StringComparison.OrdinalIgnoreCase);

    public static bool IsFor(ReadOnlySpan<byte> name) => Ascii.EqualsIgnoreCase(name, For);

    /// <summary>X-Forwarded-For: the chain the client sent (its values joined by commas), then the client's address.</summary>
    public static string? ForValue(string? prior, string? client) => prior is null ? client : $"{prior}, {client}";
}
