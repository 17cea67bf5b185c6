using System.Net;
using System.Net.Sockets;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Tables;

/// <summary>
/// Pre-encoded records of one type at one name, ready to copy into a response. Answer records start
/// with a pointer to the question name (offset 12), so the client's spelling of the name is echoed
/// and the bytes do not depend on it. Rotated per answer, as round-robin DNS is expected to be.
/// </summary>
internal sealed class RRset(ushort type, byte[][] records, byte[][]? additional = null)
{
    private int _next;

    public ushort Type { get; } = type;
    public byte[][] Records { get; } = records;

    /// <summary>Records for the additional section (full owner names): SRV targets' addresses, NS glue.</summary>
    public byte[][] Additional { get; } = additional ?? [];

    public int Count => Records.Length;

    /// <summary>Where to start this answer's rotation (a racy counter: a repeated order is harmless).</summary>
    public int NextStart() => Records.Length <= 1 ? 0 : (int)((uint)_next++ % (uint)Records.Length);

    public static RRset? Addresses(IEnumerable<IPAddress> addresses, ushort type, uint ttl)
    {
        var records = new List<byte[]>();
        foreach (var ip in addresses.Distinct())
        {
            var family = type == DnsType.A ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
            if (ip.AddressFamily != family) continue;
            records.Add(AddressRecord(null, ip, ttl));
        }
        return records.Count == 0 ? null : new RRset(type, [.. records]);
    }

    /// <summary>The set of one family (A or AAAA) from addresses encoded already, each address once.</summary>
    public static RRset? Addresses(IReadOnlyList<(IPAddress Ip, byte[] Record)> addresses, ushort type)
    {
        var family = type == DnsType.A ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
        var records = new List<byte[]>(addresses.Count);
        var seen = new HashSet<IPAddress>();
        foreach (var (ip, record) in addresses)
            if (ip.AddressFamily == family && seen.Add(ip)) records.Add(record);
        return records.Count == 0 ? null : new RRset(type, [.. records]);
    }

    /// <summary>Writes a record's RDATA.</summary>
    private delegate void Rdata(ref DnsWriter w);

    /// <summary>
    /// One record: owner (the question, as a pointer, when <paramref name="owner"/> is null; none at all for
    /// an SOA tail), type, class, TTL, then RDATA with its length filled in.
    /// </summary>
    private static byte[] Record(byte[]? owner, ushort type, uint ttl, Rdata rdata, bool withOwner = true)
    {
        Span<byte> buf = stackalloc byte[4096];
        var w = new DnsWriter(buf);
        if (withOwner) Owner(ref w, owner);
        var start = w.RecordHeader(type, ttl);
        rdata(ref w);
        w.EndRecord(start);
        return buf[..w.Position].ToArray();
    }

    /// <summary>An A or AAAA record; owner is the question (pointer) when <paramref name="owner"/> is null.</summary>
    public static byte[] AddressRecord(byte[]? owner, IPAddress ip, uint ttl) =>
        Record(owner, ip.AddressFamily == AddressFamily.InterNetwork ? DnsType.A : DnsType.AAAA, ttl, (ref DnsWriter w) =>
        {
            Span<byte> addr = stackalloc byte[16];
            ip.TryWriteBytes(addr, out var n);
            w.Bytes(addr[..n]);
        });

    public static byte[] Txt(IEnumerable<string> strings, uint ttl) =>
        Record(null, DnsType.TXT, ttl, (ref DnsWriter w) =>
        {
            foreach (var s in strings)
            {
                var bytes = System.Text.Encoding.ASCII.GetBytes(s.Length > 255 ? s[..255] : s);
                w.U8((byte)bytes.Length);
                w.Bytes(bytes);
            }
        });

    /// <summary>An SRV record (RFC 2782); the target is written uncompressed, as the RFC requires.</summary>
    public static byte[] Srv(ushort priority, ushort weight, ushort port, byte[] target, uint ttl) =>
        Record(null, DnsType.SRV, ttl, (ref DnsWriter w) =>
        {
            w.U16(priority);
            w.U16(weight);
            w.U16(port);
            w.Bytes(target);
        });

    public static byte[] Mx(ushort preference, byte[] exchange, uint ttl) =>
        Record(null, DnsType.MX, ttl, (ref DnsWriter w) =>
        {
            w.U16(preference);
            w.Bytes(exchange);
        });

    /// <summary>A record whose RDATA is one name (NS, PTR, CNAME).</summary>
    public static byte[] NameRecord(ushort type, byte[] target, uint ttl) =>
        Record(null, type, ttl, (ref DnsWriter w) => w.Bytes(target));

    /// <summary>The SOA record without its owner: the owner (the zone apex) is a pointer chosen per query.</summary>
    public static byte[] SoaTail(byte[] mname, byte[] rname, uint serial, uint ttl, uint minimum) =>
        Record(null, DnsType.SOA, ttl, (ref DnsWriter w) =>
        {
            w.Bytes(mname);
            w.Bytes(rname);
            w.U32(serial);
            w.U32(3600);    // refresh
            w.U32(600);     // retry
            w.U32(86400);   // expire
            w.U32(minimum);
        }, withOwner: false);

    private static void Owner(ref DnsWriter w, byte[]? owner)
    {
        if (owner is null) w.Pointer(12);
        else w.Bytes(owner);
    }
}
