using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Registry.Model;

/// <summary>Address text as the registry stores it, and as the snapshot's address index keys it.</summary>
public static class IpAddresses
{
    public static bool IsIPv6(string? text) =>
        text is not null && IPAddress.TryParse(text, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6 && ip.ScopeId == 0;

    /// <summary>
    /// The address index's key: IPv4 as written; IPv6 in full, lower case, eight groups of four hex digits
    /// ("2001:0db8:0000:…:0001"), so that every spelling of an address is one key, and an ip6.arpa name
    /// (32 nibbles) or a prefix of one maps to a key or a key prefix without parsing.
    /// </summary>
    public static string Key(string address)
    {
        if (!address.Contains(':', StringComparison.Ordinal) || !IPAddress.TryParse(address, out var ip)
            || ip.AddressFamily != AddressFamily.InterNetworkV6)
            return address;
        return string.Create(39, ip.GetAddressBytes(), static (chars, bytes) => WriteFull(bytes, chars));
    }

    private static void WriteFull(ReadOnlySpan<byte> bytes, Span<char> chars)
    {
        var c = 0;
        for (var i = 0; i < 16; i++)
        {
            if (i > 0 && i % 2 == 0) chars[c++] = ':';
            chars[c++] = "0123456789abcdef"[bytes[i] >> 4];
            chars[c++] = "0123456789abcdef"[bytes[i] & 0xf];
        }
    }
}
