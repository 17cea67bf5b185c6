using System.Buffers.Binary;
using System.Text;

namespace EdgeEru.Dns.Wire;

/// <summary>Domain names in wire form (length-prefixed labels, root = 0).</summary>
public static class DnsName
{
    /// <summary>Encodes a dotted name ("web.shop.eru." or without the final dot), lower-cased, uncompressed.</summary>
    public static byte[] Encode(string name)
    {
        var trimmed = name.TrimEnd('.');
        if (trimmed.Length == 0) return [0];
        var labels = trimmed.Split('.');
        var bytes = new List<byte>(trimmed.Length + 2);
        foreach (var label in labels)
        {
            if (label.Length is 0 or > 63) throw new ArgumentException($"\"{name}\": label \"{label}\" must be 1-63 characters");
            bytes.Add((byte)label.Length);
            foreach (var c in label.ToLowerInvariant())
            {
                if (c > 127) throw new ArgumentException($"\"{name}\" is not ASCII");
                bytes.Add((byte)c);
            }
        }
        bytes.Add(0);
        if (bytes.Count > DnsLimits.MaxName) throw new ArgumentException($"\"{name}\" is longer than 255 bytes");
        return [.. bytes];
    }

    /// <summary>The dotted, absolute form of a wire name (for logs and tests).</summary>
    public static string ToText(ReadOnlySpan<byte> wire)
    {
        var sb = new StringBuilder();
        var i = 0;
        while (i < wire.Length && wire[i] != 0)
        {
            var len = wire[i];
            sb.Append(Encoding.ASCII.GetString(wire.Slice(i + 1, len))).Append('.');
            i += len + 1;
        }
        return sb.Length == 0 ? "." : sb.ToString();
    }

    /// <summary>Moves <paramref name="pos"/> past a name (compressed or not); false if it runs off the message or loops.</summary>
    public static bool Skip(ReadOnlySpan<byte> m, ref int pos)
    {
        for (var hops = 0; hops < 128 && pos < m.Length; hops++)
        {
            var len = m[pos];
            if (len == 0)
            {
                pos++;
                return true;
            }
            if ((len & 0xC0) == 0xC0)
            {
                pos += 2;
                return pos <= m.Length;
            }
            if (len > 63) return false;
            pos += len + 1;
        }
        return false;
    }

    /// <summary>Offsets of each label of a wire name (up to 128), for suffix matching.</summary>
    public static int LabelStarts(ReadOnlySpan<byte> wire, Span<int> starts)
    {
        var n = 0;
        var i = 0;
        while (wire[i] != 0)
        {
            starts[n++] = i;
            i += wire[i] + 1;
        }
        return n;
    }
}

/// <summary>Writes DNS records into a buffer (big-endian). Records are pre-encoded off the hot path.</summary>
public ref struct DnsWriter(Span<byte> buffer)
{
    private readonly Span<byte> _buffer = buffer;

    public int Position { get; private set; }

    /// <summary>Drops everything after <paramref name="position"/> (a response cut for UDP).</summary>
    public void Rewind(int position) => Position = position;

    public void U8(byte v) => _buffer[Position++] = v;

    public void U16(ushort v)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[Position..], v);
        Position += 2;
    }

    public void U32(uint v)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[Position..], v);
        Position += 4;
    }

    public void Bytes(scoped ReadOnlySpan<byte> v)
    {
        v.CopyTo(_buffer[Position..]);
        Position += v.Length;
    }

    /// <summary>A compression pointer to <paramref name="offset"/> (RFC 1035 4.1.4).</summary>
    public void Pointer(int offset) => U16((ushort)(0xC000 | offset));

    /// <summary>Writes type, class, TTL and a 2-byte placeholder for RDLENGTH; returns where RDATA starts.</summary>
    public int RecordHeader(ushort type, uint ttl, ushort cls = DnsClass.IN)
    {
        U16(type);
        U16(cls);
        U32(ttl);
        U16(0);
        return Position;
    }

    /// <summary>Fills in RDLENGTH for the record whose RDATA started at <paramref name="rdataStart"/>.</summary>
    public readonly void EndRecord(int rdataStart) =>
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[(rdataStart - 2)..], (ushort)(Position - rdataStart));
}
