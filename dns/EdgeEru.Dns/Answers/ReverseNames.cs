using EdgeEru.Dns.Request;
using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Answers;

/// <summary>
/// Reverse names, <c>d.c.b.a.in-addr.arpa</c> and the 32 nibbles of <c>ip6.arpa</c>: PTR to the instance name
/// of a live workload's address.
/// </summary>
internal static class ReverseNames
{
    /// <param name="depth">How many labels stand in front of the zone's apex.</param>
    public static QueryOutcome Answer(ref ResponseWriter w, scoped in DnsQuery query, DnsTable t, ReverseZone zone, int depth)
    {
        w.ForZone(zone.SoaTail, query.SuffixStart(depth));
        if (depth == 0 && query.QType is DnsType.SOA or DnsType.ANY) return w.Soa();
        if (zone.Ip6) return Ip6(ref w, query, t, zone);
        var octets = query.LabelCount - 2; // without "in-addr.arpa"
        if (octets < 4)
        {
            // A name on the way to addresses exists only if some live address lies below it (RFC 8020).
            Span<char> prefix = stackalloc char[16];
            var p = 0;
            for (var i = octets - 1; i >= 0; i--)
            {
                foreach (var c in query.Label(i)) prefix[p++] = (char)c;
                prefix[p++] = '.';
            }
            return t.Snapshot.LiveByIp.HasKeyWithPrefix(prefix[..p]) ? w.NoData() : w.NxDomain();
        }
        if (octets > 4) return w.NxDomain();
        // d.c.b.a.in-addr.arpa → "a.b.c.d"
        Span<char> ip = stackalloc char[15];
        var n = 0;
        for (var i = 3; i >= 0; i--)
        {
            var label = query.Label(i);
            if (label.Length is 0 or > 3) return w.NxDomain();
            foreach (var c in label)
            {
                if (c is < (byte)'0' or > (byte)'9') return w.NxDomain();
                ip[n++] = (char)c;
            }
            if (i > 0) ip[n++] = '.';
        }
        if (!t.Snapshot.LiveByIp.TryGetValue(ip[..n], out var entry) || t.Zones.Length == 0) return w.NxDomain();
        if (query.QType is not (DnsType.PTR or DnsType.ANY)) return w.NoData();
        var v = entry.Views[0];
        return w.Ptr(v.Record!.Ident, v.Record.Entrypoint, v.Record.App, t.Zones[0].Apex, zone.Ttl);
    }

    /// <summary>
    /// <c>{32 nibbles}.ip6.arpa</c> → the address index's full key, "2001:0db8:…"; fewer nibbles are a prefix of
    /// keys (a name on the way to addresses).
    /// </summary>
    private static QueryOutcome Ip6(ref ResponseWriter w, scoped in DnsQuery query, DnsTable t, ReverseZone zone)
    {
        var nibbles = query.LabelCount - 2; // without "ip6.arpa"
        if (nibbles > 32) return w.NxDomain();
        Span<char> key = stackalloc char[39];
        var n = 0;
        for (var i = nibbles - 1; i >= 0; i--)
        {
            var label = query.Label(i);
            if (label.Length != 1 || !char.IsAsciiHexDigitLower((char)label[0])) return w.NxDomain();
            key[n++] = (char)label[0];
            if (i > 0 && (nibbles - i) % 4 == 0) key[n++] = ':';
        }
        if (nibbles < 32) return t.Snapshot.LiveByIp.HasKeyWithPrefix(key[..n]) ? w.NoData() : w.NxDomain();
        if (!t.Snapshot.LiveByIp.TryGetValue(key[..n], out var entry) || t.Zones.Length == 0) return w.NxDomain();
        if (query.QType is not (DnsType.PTR or DnsType.ANY)) return w.NoData();
        var v = entry.Views[0];
        return w.Ptr(v.Record!.Ident, v.Record.Entrypoint, v.Record.App, t.Zones[0].Apex, zone.Ttl);
    }
}
