using System.Buffers.Binary;
using EdgeEru.Dns.Request;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Response;

/// <summary>
/// Writes one response: header, the question echoed as it came, the sections, OPT. Records are copied in
/// pre-encoded; a response over the transport's limit is cut (over UDP: no records, TC set).
/// </summary>
internal ref struct ResponseWriter
{
    private readonly Span<byte> _r;
    private readonly bool _edns;
    private readonly bool _dnssecOk;
    private readonly int _limit;
    private readonly int _questionEnd;
    private readonly ushort _qtype;
    private DnsWriter _w;
    private int _answers, _authority, _additional;
    private bool _full;
    private byte[]? _soaTail;
    private int _apexAt;

    public ResponseWriter(Span<byte> response, scoped in DnsQuery query)
    {
        _r = response;
        _edns = query.HasEdns;
        _dnssecOk = query.DnssecOk;
        _limit = query.ResponseLimit;
        _questionEnd = query.QuestionEnd;
        _qtype = query.QType;
        _w = new DnsWriter(response);
        _w.Bytes(query.Message[..query.QuestionEnd]);
    }

    /// <summary>
    /// The zone that answers: its SOA goes with negative answers, its owner a pointer to the apex at
    /// <paramref name="apexAt"/> in the question's name. Set before <see cref="NoData"/>, <see cref="NxDomain"/> and <see cref="Soa"/>.
    /// </summary>
    public void ForZone(byte[] soaTail, int apexAt)
    {
        _soaTail = soaTail;
        _apexAt = apexAt;
    }

    public QueryOutcome Answer(RRset set)
    {
        AddSet(set, ref _answers);
        foreach (var extra in set.Additional) Add(extra, ref _additional);
        return Finish(DnsRcode.NoError, authoritative: true);
    }

    /// <summary>Answers one name that has these sets; ANY gets just one of them (RFC 8482).</summary>
    public QueryOutcome Records(RRset? a, RRset? aaaa, RRset? txt, RRset? srv, RRset? mx = null)
    {
        var set = _qtype switch
        {
            DnsType.A => a,
            DnsType.AAAA => aaaa,
            DnsType.TXT => txt,
            DnsType.SRV => srv,
            DnsType.MX => mx,
            DnsType.ANY => a ?? aaaa ?? srv ?? mx ?? txt,
            _ => null,
        };
        return set is null ? NoData() : Answer(set);
    }

    /// <summary>One instance's own name: its record of the asked family, taken from its service's sets.</summary>
    public QueryOutcome Instance(RRset? a, RRset? aaaa, InstanceRecords at)
    {
        var (set, index) = _qtype switch
        {
            DnsType.A => (a, at.A),
            DnsType.AAAA => (aaaa, at.AAAA),
            DnsType.ANY => at.A >= 0 ? (a, at.A) : (aaaa, at.AAAA),
            _ => (null, -1),
        };
        if (set is null || index < 0) return NoData();
        Add(set.Records[index], ref _answers);
        return Finish(DnsRcode.NoError, authoritative: true);
    }

    public QueryOutcome Soa()
    {
        if (Fits(2 + _soaTail!.Length))
        {
            _w.Pointer(12 + _apexAt);
            _w.Bytes(_soaTail);
            _answers++;
        }
        return Finish(DnsRcode.NoError, authoritative: true);
    }

    public QueryOutcome NoData() => Negative(DnsRcode.NoError);

    public QueryOutcome NxDomain() => Negative(DnsRcode.NxDomain);

    /// <summary>A PTR to <c>{ident}.{entrypoint}.{app}.{zone}</c>, encoded now (addresses are too many to pre-encode).</summary>
    public QueryOutcome Ptr(string ident, string entrypoint, string app, byte[] zoneApex, uint ttl)
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
        return Finish(DnsRcode.NoError, authoritative: true);
    }

    private QueryOutcome Negative(int rcode)
    {
        if (Fits(2 + _soaTail!.Length))
        {
            _w.Pointer(12 + _apexAt);
            _w.Bytes(_soaTail);
            _authority++;
        }
        return Finish(rcode, authoritative: true);
    }

    public QueryOutcome Finish(int rcode, bool authoritative)
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
            _w.U16(_dnssecOk ? (ushort)0x8000 : (ushort)0); // DO copied from the query (RFC 3225 3); we sign nothing
            _w.U16(0);
            optCount = 1;
        }
        var q2 = _r[2];
        _r[2] = (byte)(DnsFlags.Qr | (q2 & DnsFlags.Opcode) | (authoritative ? DnsFlags.Aa : 0) | (_full ? DnsFlags.Tc : 0)
            | (q2 & DnsFlags.Rd));
        _r[3] = (byte)((_r[3] & DnsFlags.Cd) | (rcode & 0xF));
        BinaryPrimitives.WriteUInt16BigEndian(_r[4..], 1);
        BinaryPrimitives.WriteUInt16BigEndian(_r[6..], (ushort)_answers);
        BinaryPrimitives.WriteUInt16BigEndian(_r[8..], (ushort)_authority);
        BinaryPrimitives.WriteUInt16BigEndian(_r[10..], (ushort)(_additional + optCount));
        return new QueryOutcome(_w.Position, _qtype, rcode);
    }

    /// <summary>A reply with the header alone, for a query whose header is all that can be trusted: the id and opcode echoed.</summary>
    public static QueryOutcome HeaderOnly(ReadOnlySpan<byte> query, Span<byte> response, int rcode, ushort qtype)
    {
        query[..2].CopyTo(response);
        response[2] = (byte)(DnsFlags.Qr | (query[2] & DnsFlags.Opcode) | (query[2] & DnsFlags.Rd));
        response[3] = (byte)(rcode & 0xF);
        response[4..12].Clear();
        return new QueryOutcome(12, qtype, rcode);
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
