using System.Buffers.Binary;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Forwarding;

/// <summary>Where the records of a response are: enough to read and rewrite TTLs in place (the forwarder's cache).</summary>
internal static class ResponseRecords
{
    internal readonly record struct Record(int Section, ushort Type, int TtlOffset, int RdataOffset, int RdLength);

    /// <summary>The records of a well-formed message; null if it does not parse.</summary>
    public static List<Record>? Read(ReadOnlySpan<byte> m)
    {
        if (m.Length < 12) return null;
        var pos = 12;
        for (var i = BinaryPrimitives.ReadUInt16BigEndian(m[4..]); i > 0; i--)
        {
            if (!DnsName.Skip(m, ref pos) || pos + 4 > m.Length) return null;
            pos += 4;
        }
        var records = new List<Record>();
        int[] counts =
        [
            BinaryPrimitives.ReadUInt16BigEndian(m[6..]), BinaryPrimitives.ReadUInt16BigEndian(m[8..]),
            BinaryPrimitives.ReadUInt16BigEndian(m[10..]),
        ];
        for (var section = 0; section < 3; section++)
        {
            for (var i = 0; i < counts[section]; i++)
            {
                if (!DnsName.Skip(m, ref pos) || pos + 10 > m.Length) return null;
                var type = BinaryPrimitives.ReadUInt16BigEndian(m[pos..]);
                var rdLength = BinaryPrimitives.ReadUInt16BigEndian(m[(pos + 8)..]);
                if (pos + 10 + rdLength > m.Length) return null;
                records.Add(new Record(section, type, pos + 4, pos + 10, rdLength));
                pos += 10 + rdLength;
            }
        }
        return records;
    }

    /// <summary>
    /// How long a response may be cached: the smallest answer TTL; for a negative answer the SOA's
    /// TTL or MINIMUM, whichever is smaller (RFC 2308); null when it must not be cached.
    /// </summary>
    public static uint? CacheTtl(ReadOnlySpan<byte> m, List<Record> records)
    {
        var rcode = m[3] & 0xF;
        if (rcode is not (DnsRcode.NoError or DnsRcode.NxDomain) || (m[2] & 0x02) != 0) return null; // errors, truncated
        uint? min = null;
        foreach (var r in records.Where(r => r.Section == 0))
            min = Math.Min(min ?? uint.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(m[r.TtlOffset..]));
        if (min is not null && rcode == DnsRcode.NoError) return min;
        foreach (var r in records.Where(r => r.Section == 1 && r.Type == DnsType.SOA && r.RdLength >= 22))
        {
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(m[r.TtlOffset..]);
            var minimum = BinaryPrimitives.ReadUInt32BigEndian(m[(r.RdataOffset + r.RdLength - 4)..]);
            return Math.Min(ttl, minimum);
        }
        return null;
    }

    /// <summary>Lowers every TTL (not OPT's, which is not a TTL) by <paramref name="age"/> seconds.</summary>
    public static void Age(Span<byte> m, List<Record> records, uint age)
    {
        foreach (var r in records)
        {
            if (r.Type == DnsType.OPT) continue;
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(m[r.TtlOffset..]);
            BinaryPrimitives.WriteUInt32BigEndian(m[r.TtlOffset..], ttl > age ? ttl - age : 0);
        }
    }
}
