using System.Buffers.Binary;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Answers;

/// <summary>What happened to one query, for metrics and logs.</summary>
internal readonly record struct QueryOutcome(int Length, ushort QType, int Rcode, bool NotOurs = false, int ClientUdpLimit = 0)
{
    /// <summary>No response at all: too short to carry an id, or a response rather than a query.</summary>
    public bool Dropped => Length == 0;
}

/// <summary>
/// The server's whole protocol logic, with no I/O: a query's bytes in, the response's bytes out.
/// Parses by hand into stack buffers and copies pre-encoded records, so the hot path allocates nothing.
/// </summary>
internal sealed class QueryProcessor(Func<DnsTable?> table)
{
    private const byte FlagQr = 0x80, FlagAa = 0x04, FlagTc = 0x02, FlagRd = 0x01, FlagCd = 0x10;

    public QueryOutcome Process(ReadOnlySpan<byte> q, Span<byte> r, bool tcp)
    {
        if (q.Length < 12 || (q[2] & FlagQr) != 0) return default; // nothing to answer, or a response: never reply
        var opcode = (q[2] >> 3) & 0xF;
        if (opcode != 0) return Header(q, r, DnsRcode.NotImp, 0);
        if (U16(q, 4) != 1) return Header(q, r, DnsRcode.FormErr, 0);

        // Question: the name, lower-cased for lookups; the original bytes are echoed as they came.
        Span<byte> lower = stackalloc byte[DnsLimits.MaxName];
        Span<int> starts = stackalloc int[DnsTable.MaxLabels];
        var pos = 12;
        var labels = 0;
        while (true)
        {
            if (pos >= q.Length) return Header(q, r, DnsRcode.FormErr, 0);
            var len = q[pos];
            if (len == 0) break;
            if (len > 63 || pos - 12 + len + 2 > DnsLimits.MaxName) return Header(q, r, DnsRcode.FormErr, 0); // also rejects pointers
            if (pos + 1 + len > q.Length) return Header(q, r, DnsRcode.FormErr, 0);
            starts[labels++] = pos - 12;
            lower[pos - 12] = len;
            for (var i = 1; i <= len; i++)
            {
                var c = q[pos + i];
                lower[pos - 12 + i] = c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c | 0x20) : c;
            }
            pos += len + 1;
        }
        lower[pos - 12] = 0;
        var nameLength = pos - 12 + 1;
        pos++;
        if (pos + 4 > q.Length) return Header(q, r, DnsRcode.FormErr, 0);
        var qtype = U16(q, pos);
        var qclass = U16(q, pos + 2);
        pos += 4;
        var questionEnd = pos;

        // The other sections: only an OPT record (in the additional section) means anything to us.
        var edns = false;
        var udpSize = DnsLimits.ClassicUdp;
        var ednsVersion = 0;
        int an = U16(q, 6), ns = U16(q, 8), ar = U16(q, 10);
        for (var i = 0; i < an + ns + ar; i++)
        {
            var ownerIsRoot = pos < q.Length && q[pos] == 0;
            if (!DnsName.Skip(q, ref pos) || pos + 10 > q.Length) return Header(q, r, DnsRcode.FormErr, qtype);
            var type = U16(q, pos);
            var rdLength = U16(q, pos + 8);
            if (type == DnsType.OPT)
            {
                if (i < an + ns || !ownerIsRoot || edns) return Header(q, r, DnsRcode.FormErr, qtype);
                edns = true;
                udpSize = Math.Max(DnsLimits.ClassicUdp, (int)U16(q, pos + 2));
                ednsVersion = q[pos + 5];
            }
            pos += 10 + rdLength;
            if (pos > q.Length) return Header(q, r, DnsRcode.FormErr, qtype);
        }
        if (pos != q.Length) return Header(q, r, DnsRcode.FormErr, qtype);

        var w = new Response(r, q, questionEnd, edns, tcp ? DnsLimits.MaxMessage : Math.Min(udpSize, edns ? DnsLimits.EdnsUdp : DnsLimits.ClassicUdp));
        if (edns && ednsVersion != 0) return w.Finish(DnsRcode.BadVers, qtype, authoritative: false);
        if (qtype == DnsType.OPT) return w.Finish(DnsRcode.FormErr, qtype, authoritative: false);
        if (qclass is not (DnsClass.IN or DnsClass.ANY)) return w.Finish(DnsRcode.Refused, qtype, authoritative: false);

        var t = table();
        if (t is null) return w.Finish(DnsRcode.ServFail, qtype, authoritative: false); // no snapshot yet since start
        var name = lower[..nameLength];
        foreach (var zone in t.Zones)
        {
            var rel = labels - zone.ApexLabels;
            if (rel < 0 || !name[(rel == labels ? nameLength - 1 : starts[rel])..].SequenceEqual(zone.Apex)) continue;
            if (qtype is DnsType.AXFR or DnsType.IXFR) return w.Finish(DnsRcode.Refused, qtype, authoritative: false);
            return Forward(ref w, t, zone, name, starts, rel, qtype);
        }
        foreach (var zone in t.Reverse)
        {
            var rel = labels - zone.ApexLabels;
            if (rel < 0 || !name[starts[rel]..].SequenceEqual(zone.Apex)) continue;
            if (qtype is DnsType.AXFR or DnsType.IXFR) return w.Finish(DnsRcode.Refused, qtype, authoritative: false);
            return ReverseLookup(ref w, t, zone, name, starts, labels, rel, qtype);
        }
        // Not ours: REFUSED (we are not an open resolver), unless the server forwards it for this client.
        return w.Finish(DnsRcode.Refused, qtype, authoritative: false) with
        {
            NotOurs = true,
            ClientUdpLimit = edns ? Math.Min(udpSize, DnsLimits.EdnsUdp) : DnsLimits.ClassicUdp,
        };
    }

    private static QueryOutcome Forward(ref Response w, DnsTable t, ZoneAnswers zone, scoped ReadOnlySpan<byte> name, scoped ReadOnlySpan<int> starts, int rel, ushort qtype)
    {
        var apexAt = rel == 0 ? 0 : starts[rel];
        if (rel == 0)
        {
            if (qtype is DnsType.SOA or DnsType.ANY) return w.Soa(zone.SoaTail, apexAt, qtype);
            if (qtype == DnsType.NS) return w.Answer(zone.Ns, qtype);
            return w.NoData(zone.SoaTail, apexAt, qtype);
        }
        if (zone.Static.Count > 0)
        {
            // Operators' static names come first: "db" for db.eru., "x.y" for x.y.eru.
            var relativeLength = starts[rel] - 1;
            Span<char> relative = stackalloc char[DnsLimits.MaxName];
            for (var i = 0; i < relativeLength; i++) relative[i] = (char)name[i + 1];
            for (var l = 1; l < rel; l++) relative[starts[l] - 1] = '.';
            if (zone.Static.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(relative[..relativeLength], out var fixedName))
                return w.Records(qtype, fixedName.A, fixedName.AAAA, fixedName.Txt, fixedName.Srv, zone.SoaTail, apexAt, fixedName.Mx);
        }
        var last = Label(name, starts[rel - 1]);
        if (DnsTableBuilder.IsNodeLabel(last))
        {
            if (rel == 1) return zone.Nodes.Count > 0 ? w.NoData(zone.SoaTail, apexAt, qtype) : w.NxDomain(zone.SoaTail, apexAt, qtype);
            if (rel == 2 && zone.Nodes.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(Chars(Label(name, starts[0]), stackalloc char[63]), out var node))
                return w.Records(qtype, node.A, node.AAAA, node.Txt, null, zone.SoaTail, apexAt);
            return w.NxDomain(zone.SoaTail, apexAt, qtype);
        }
        if (rel == 1)
        {
            return zone.Apps.GetAlternateLookup<ReadOnlySpan<char>>().ContainsKey(Chars(last, stackalloc char[63]))
                ? w.NoData(zone.SoaTail, apexAt, qtype) : w.NxDomain(zone.SoaTail, apexAt, qtype);
        }
        if (rel > 4) return w.NxDomain(zone.SoaTail, apexAt, qtype);

        // {entrypoint}.{app}: the two labels just above the zone.
        Span<char> key = stackalloc char[127];
        var ep = Label(name, starts[rel - 2]);
        var keyLength = Chars(ep, key).Length;
        key[keyLength++] = '.';
        keyLength += Chars(last, key[keyLength..]).Length;
        if (!zone.Services.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key[..keyLength], out var service))
            return w.NxDomain(zone.SoaTail, apexAt, qtype);
        if (rel == 2) return w.Records(qtype, service.A, service.AAAA, service.Txt, null, zone.SoaTail, apexAt);

        var first = Label(name, starts[0]);
        if (rel == 3)
        {
            if (first.Length > 0 && first[0] == '_')
            {
                return service.SrvProtocols.GetAlternateLookup<ReadOnlySpan<char>>().Contains(Chars(first, stackalloc char[63]))
                    ? w.NoData(zone.SoaTail, apexAt, qtype) : w.NxDomain(zone.SoaTail, apexAt, qtype);
            }
            return service.Below.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(Chars(first, stackalloc char[63]), out var subset)
                ? w.Records(qtype, subset.A, subset.AAAA, null, null, zone.SoaTail, apexAt)
                : w.NxDomain(zone.SoaTail, apexAt, qtype);
        }
        // rel == 4: _{port}._{proto}.{entrypoint}.{app}
        var proto = Label(name, starts[1]);
        if (first.Length < 2 || first[0] != '_' || proto.Length < 2 || proto[0] != '_') return w.NxDomain(zone.SoaTail, apexAt, qtype);
        Span<char> srvKey = stackalloc char[127];
        var n = Chars(first, srvKey).Length;
        srvKey[n++] = '.';
        n += Chars(proto, srvKey[n..]).Length;
        return service.Srv.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(srvKey[..n], out var srv)
            ? w.Records(qtype, null, null, null, srv, zone.SoaTail, apexAt)
            : w.NxDomain(zone.SoaTail, apexAt, qtype);
    }

    private static QueryOutcome ReverseLookup(ref Response w, DnsTable t, ReverseZone zone, scoped ReadOnlySpan<byte> name, scoped ReadOnlySpan<int> starts,
        int labels, int rel, ushort qtype)
    {
        var apexAt = starts[rel];
        if (rel == 0 && qtype is DnsType.SOA or DnsType.ANY) return w.Soa(zone.SoaTail, apexAt, qtype);
        var octets = labels - 2; // without "in-addr.arpa"
        if (octets < 4)
        {
            // A name on the way to addresses exists only if some live address lies below it (RFC 8020).
            Span<char> prefix = stackalloc char[16];
            var p = 0;
            for (var i = octets - 1; i >= 0; i--)
            {
                foreach (var c in Label(name, starts[i])) prefix[p++] = (char)c;
                prefix[p++] = '.';
            }
            return t.Snapshot.LiveByIp.HasKeyWithPrefix(prefix[..p])
                ? w.NoData(zone.SoaTail, apexAt, qtype) : w.NxDomain(zone.SoaTail, apexAt, qtype);
        }
        if (octets > 4) return w.NxDomain(zone.SoaTail, apexAt, qtype);
        // d.c.b.a.in-addr.arpa → "a.b.c.d"
        Span<char> ip = stackalloc char[15];
        var n = 0;
        for (var i = 3; i >= 0; i--)
        {
            var label = Label(name, starts[i]);
            if (label.Length is 0 or > 3) return w.NxDomain(zone.SoaTail, apexAt, qtype);
            foreach (var c in label)
            {
                if (c is < (byte)'0' or > (byte)'9') return w.NxDomain(zone.SoaTail, apexAt, qtype);
                ip[n++] = (char)c;
            }
            if (i > 0) ip[n++] = '.';
        }
        if (!t.Snapshot.LiveByIp.TryGetValue(ip[..n], out var entry) || t.Zones.Length == 0) return w.NxDomain(zone.SoaTail, apexAt, qtype);
        if (qtype is not (DnsType.PTR or DnsType.ANY)) return w.NoData(zone.SoaTail, apexAt, qtype);
        var v = entry.Views[0];
        return w.Ptr(v.Record!.Ident, v.Record.Entrypoint, v.Record.App, t.Zones[0].Apex, zone.Ttl, qtype);
    }

    private static QueryOutcome Header(ReadOnlySpan<byte> q, Span<byte> r, int rcode, ushort qtype)
    {
        // Only the header is trusted: echo the id and opcode, no sections.
        q[..2].CopyTo(r);
        r[2] = (byte)(FlagQr | (q[2] & 0x78) | (q[2] & FlagRd));
        r[3] = (byte)(rcode & 0xF);
        r[4..12].Clear();
        return new QueryOutcome(12, qtype, rcode);
    }

    private static ReadOnlySpan<byte> Label(ReadOnlySpan<byte> name, int start) => name.Slice(start + 1, name[start]);

    private static Span<char> Chars(ReadOnlySpan<byte> ascii, Span<char> into)
    {
        for (var i = 0; i < ascii.Length; i++) into[i] = (char)ascii[i];
        return into[..ascii.Length];
    }

    private static ushort U16(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt16BigEndian(b[at..]);

    /// <summary>Builds one response: header, echoed question, sections, OPT; truncates to the transport's limit.</summary>
    private ref struct Response
    {
        private readonly Span<byte> _r;
        private readonly bool _edns;
        private readonly int _limit;
        private readonly int _questionEnd;
        private DnsWriter _w;
        private int _answers, _authority, _additional;
        private bool _full;

        public Response(Span<byte> r, ReadOnlySpan<byte> q, int questionEnd, bool edns, int limit)
        {
            _r = r;
            _edns = edns;
            _limit = limit;
            _questionEnd = questionEnd;
            _w = new DnsWriter(r);
            _w.Bytes(q[..questionEnd]);
        }

        public QueryOutcome Answer(RRset set, ushort qtype)
        {
            AddSet(set, ref _answers);
            foreach (var extra in set.Additional) Add(extra, ref _additional);
            return Finish(DnsRcode.NoError, qtype, authoritative: true);
        }

        /// <summary>Answers one name that has these sets; ANY gets just one of them (RFC 8482).</summary>
        public QueryOutcome Records(ushort qtype, RRset? a, RRset? aaaa, RRset? txt, RRset? srv, byte[] soa, int apexAt, RRset? mx = null)
        {
            var set = qtype switch
            {
                DnsType.A => a,
                DnsType.AAAA => aaaa,
                DnsType.TXT => txt,
                DnsType.SRV => srv,
                DnsType.MX => mx,
                DnsType.ANY => a ?? aaaa ?? srv ?? mx ?? txt,
                _ => null,
            };
            return set is null ? NoData(soa, apexAt, qtype) : Answer(set, qtype);
        }

        public QueryOutcome Soa(byte[] soaTail, int apexAt, ushort qtype)
        {
            if (Fits(2 + soaTail.Length))
            {
                _w.Pointer(12 + apexAt);
                _w.Bytes(soaTail);
                _answers++;
            }
            return Finish(DnsRcode.NoError, qtype, authoritative: true);
        }

        public QueryOutcome NoData(byte[] soaTail, int apexAt, ushort qtype) => Negative(DnsRcode.NoError, soaTail, apexAt, qtype);

        public QueryOutcome NxDomain(byte[] soaTail, int apexAt, ushort qtype) => Negative(DnsRcode.NxDomain, soaTail, apexAt, qtype);

        /// <summary>A PTR to <c>{ident}.{entrypoint}.{app}.{zone}</c>, encoded now (addresses are too many to pre-encode).</summary>
        public QueryOutcome Ptr(string ident, string entrypoint, string app, byte[] zoneApex, uint ttl, ushort qtype)
        {
            var size = 2 + 10 + ident.Length + entrypoint.Length + app.Length + 3 + zoneApex.Length;
            if (Fits(size))
            {
                _w.Pointer(12);
                var rdata = _w.RecordHeader(DnsType.PTR, ttl);
                foreach (var label in (ReadOnlySpan<string>)[ident, entrypoint, app])
                {
                    _w.U8((byte)label.Length);
                    foreach (var c in label) _w.U8((byte)c);
                }
                _w.Bytes(zoneApex);
                _w.EndRecord(rdata);
                _answers++;
            }
            return Finish(DnsRcode.NoError, qtype, authoritative: true);
        }

        private QueryOutcome Negative(int rcode, byte[] soaTail, int apexAt, ushort qtype)
        {
            if (Fits(2 + soaTail.Length))
            {
                _w.Pointer(12 + apexAt);
                _w.Bytes(soaTail);
                _authority++;
            }
            return Finish(rcode, qtype, authoritative: true);
        }

        public QueryOutcome Finish(int rcode, ushort qtype, bool authoritative)
        {
            if (_full && _limit < DnsLimits.MaxMessage)
            {
                // Over UDP: send no records at all with TC set; the client retries over TCP (RFC 2181 9).
                _w.Rewind(_questionEnd);
                _answers = _authority = _additional = 0;
            }
            var optCount = 0;
            if (_edns)
            {
                _w.U8(0);                         // root
                _w.U16(DnsType.OPT);
                _w.U16(DnsLimits.EdnsUdp);        // our size, not the client's
                _w.U8((byte)(rcode >> 4));        // extended rcode
                _w.U8(0);                         // version 0
                _w.U16(0);                        // no DO: no DNSSEC here
                _w.U16(0);
                optCount = 1;
            }
            var q2 = _r[2];
            _r[2] = (byte)(FlagQr | (q2 & 0x78) | (authoritative ? FlagAa : 0) | (_full ? FlagTc : 0) | (q2 & FlagRd));
            _r[3] = (byte)((_r[3] & FlagCd) | (rcode & 0xF));
            BinaryPrimitives.WriteUInt16BigEndian(_r[4..], 1);
            BinaryPrimitives.WriteUInt16BigEndian(_r[6..], (ushort)_answers);
            BinaryPrimitives.WriteUInt16BigEndian(_r[8..], (ushort)_authority);
            BinaryPrimitives.WriteUInt16BigEndian(_r[10..], (ushort)(_additional + optCount));
            return new QueryOutcome(_w.Position, qtype, rcode);
        }

        private void AddSet(RRset set, ref int count)
        {
            var records = set.Records;
            var start = set.NextStart();
            for (var i = 0; i < records.Length; i++) Add(records[(start + i) % records.Length], ref count);
        }

        private void Add(byte[] record, ref int count)
        {
            if (!Fits(record.Length)) return;
            _w.Bytes(record);
            count++;
        }

        /// <summary>Room for <paramref name="n"/> more bytes, keeping 11 for the OPT record; else marks the response full.</summary>
        private bool Fits(int n)
        {
            if (_full) return false;
            if (_w.Position + n + (_edns ? 11 : 0) <= _limit) return true;
            _full = true;
            return false;
        }
    }
}
