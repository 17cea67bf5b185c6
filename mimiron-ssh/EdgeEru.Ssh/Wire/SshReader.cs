using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace EdgeEru.Ssh.Wire;

/// <summary>Reads SSH wire data; anything truncated or malformed is an <see cref="SshProtocolException"/> naming the field.</summary>
public ref struct SshReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    public readonly int Remaining => _data.Length - _pos;
    public readonly bool AtEnd => _pos == _data.Length;
    public readonly ReadOnlySpan<byte> Rest => _data[_pos..];

    private ReadOnlySpan<byte> Take(int n, string what)
    {
        if (n < 0 || n > Remaining) throw new SshProtocolException($"truncated {what}: need {n} bytes, {Remaining} left");
        var s = _data.Slice(_pos, n);
        _pos += n;
        return s;
    }

    public ReadOnlySpan<byte> Raw(int n, string what) => Take(n, what);

    public byte Byte(string what = "byte") => Take(1, what)[0];

    public bool Boolean(string what = "boolean") => Byte(what) != 0;

    public uint UInt32(string what = "uint32") => BinaryPrimitives.ReadUInt32BigEndian(Take(4, what));

    public ulong UInt64(string what = "uint64") => BinaryPrimitives.ReadUInt64BigEndian(Take(8, what));

    public ReadOnlySpan<byte> String(string what = "string")
    {
        var n = UInt32(what + " length");
        if (n > Remaining) throw new SshProtocolException($"truncated {what}: length {n}, {Remaining} bytes left");
        return Take((int)n, what);
    }

    /// <summary>A string that must be UTF-8 text (names, commands, terminal types).</summary>
    public string Utf8(string what = "string")
    {
        var s = String(what);
        try
        {
            return new UTF8Encoding(false, true).GetString(s);
        }
        catch (DecoderFallbackException)
        {
            throw new SshProtocolException($"{what} is not valid UTF-8");
        }
    }

    /// <summary>A name-list (RFC 4251 §5): comma-separated US-ASCII names, none empty.</summary>
    public string[] NameList(string what = "name-list")
    {
        var s = String(what);
        if (s.Length == 0) return [];
        foreach (var b in s)
            if (b is < 0x21 or > 0x7e) throw new SshProtocolException($"{what} has a byte outside printable US-ASCII");
        var names = Encoding.ASCII.GetString(s).Split(',');
        if (names.Any(n => n.Length == 0)) throw new SshProtocolException($"{what} has an empty name");
        return names;
    }

    /// <summary>An mpint in two's complement; a needless leading 0x00 or 0xff is refused (RFC 4251 §5).</summary>
    public BigInteger Mpint(string what = "mpint")
    {
        var s = String(what);
        if (s.Length == 0) return BigInteger.Zero;
        if (s.Length > 1 && ((s[0] == 0 && (s[1] & 0x80) == 0) || (s[0] == 0xff && (s[1] & 0x80) != 0)))
            throw new SshProtocolException($"{what} has a needless leading byte");
        return new BigInteger(s, isUnsigned: false, isBigEndian: true);
    }

    /// <summary>A non-negative mpint's magnitude, big-endian without leading zeros.</summary>
    public ReadOnlySpan<byte> MpintUnsigned(string what = "mpint")
    {
        var s = String(what);
        if (s.Length == 0) return s;
        if ((s[0] & 0x80) != 0) throw new SshProtocolException($"{what} is negative");
        if (s.Length > 1 && s[0] == 0 && (s[1] & 0x80) == 0) throw new SshProtocolException($"{what} has a needless leading byte");
        return s[0] == 0 ? s[1..] : s;
    }

    public readonly void ExpectEnd(string what)
    {
        if (!AtEnd) throw new SshProtocolException($"{Remaining} unexpected bytes after {what}");
    }
}
