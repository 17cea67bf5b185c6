using System.Buffers.Binary;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Request;

/// <summary>Why a query gets no full answer.</summary>
internal enum QueryProblem : byte
{
    None,

    /// <summary>Shorter than a header, or a response: never answered.</summary>
    NotAQuery,

    /// <summary>An opcode other than QUERY: NOTIMP, with the header alone.</summary>
    NotImplemented,

    /// <summary>FORMERR, with the header alone.</summary>
    Malformed,
}

/// <summary>
/// One query, parsed once: the question (its name lower-cased for lookups, where each label starts) and the
/// EDNS facts. Like CoreDNS's request.Request, but a view over the message and the caller's stack buffers,
/// so that parsing allocates nothing.
/// </summary>
internal readonly ref struct DnsQuery
{
    private readonly ReadOnlySpan<int> _labelStarts;

    /// <summary>
    /// Parses <paramref name="message"/>; the lower-cased name goes to <paramref name="nameBuffer"/>
    /// (<see cref="DnsLimits.MaxName"/> bytes) and its labels' offsets to <paramref name="labelStarts"/>
    /// (<see cref="DnsLimits.MaxLabels"/>). <see cref="Problem"/> says whether there is a question to answer.
    /// </summary>
    public DnsQuery(ReadOnlySpan<byte> message, bool tcp, Span<byte> nameBuffer, Span<int> labelStarts)
    {
        Message = message;
        Tcp = tcp;
        if (message.Length < 12 || (message[2] & DnsFlags.Qr) != 0)
        {
            Problem = QueryProblem.NotAQuery;
            return;
        }
        if (((message[2] >> 3) & 0xF) != 0)
        {
            Problem = QueryProblem.NotImplemented;
            return;
        }
        Problem = QueryProblem.Malformed; // until the whole message has been read
        if (U16(message, 4) != 1) return;

        // The name, lower-cased for lookups; replies echo the question's own bytes.
        var pos = 12;
        var labels = 0;
        while (true)
        {
            if (pos >= message.Length) return;
            var len = message[pos];
            if (len == 0) break;
            if (len > 63 || pos - 12 + len + 2 > DnsLimits.MaxName) return; // also rejects pointers
            if (pos + 1 + len > message.Length) return;
            labelStarts[labels++] = pos - 12;
            nameBuffer[pos - 12] = len;
            for (var i = 1; i <= len; i++)
            {
                var c = message[pos + i];
                nameBuffer[pos - 12 + i] = c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c | 0x20) : c;
            }
            pos += len + 1;
        }
        nameBuffer[pos - 12] = 0;
        Name = nameBuffer[..(pos - 12 + 1)];
        _labelStarts = labelStarts[..labels];
        pos++;
        if (pos + 4 > message.Length) return;
        QType = U16(message, pos);
        QClass = U16(message, pos + 2);
        pos += 4;
        QuestionEnd = pos;

        // The other sections: only an OPT record (in the additional section) means anything to us.
        UdpSize = DnsLimits.ClassicUdp;
        int an = U16(message, 6), ns = U16(message, 8), ar = U16(message, 10);
        for (var i = 0; i < an + ns + ar; i++)
        {
            var ownerIsRoot = pos < message.Length && message[pos] == 0;
            if (!DnsName.Skip(message, ref pos) || pos + 10 > message.Length) return;
            var type = U16(message, pos);
            var rdLength = U16(message, pos + 8);
            if (type == DnsType.OPT)
            {
                if (i < an + ns || !ownerIsRoot || HasEdns) return;
                HasEdns = true;
                UdpSize = Math.Max(DnsLimits.ClassicUdp, (int)U16(message, pos + 2));
                EdnsVersion = message[pos + 5];
                DnssecOk = (message[pos + 6] & 0x80) != 0;
            }
            pos += 10 + rdLength;
            if (pos > message.Length) return;
        }
        if (pos != message.Length) return;
        Problem = QueryProblem.None;
    }

    /// <summary>The query as it came.</summary>
    public ReadOnlySpan<byte> Message { get; }

    public bool Tcp { get; }

    public QueryProblem Problem { get; }

    /// <summary>The question's name in wire form, lower-cased, ending with the root's 0.</summary>
    public ReadOnlySpan<byte> Name { get; }

    public int LabelCount => _labelStarts.Length;

    /// <summary>0 when the question could not be read.</summary>
    public ushort QType { get; }

    public ushort QClass { get; }

    /// <summary>Where the question ends in <see cref="Message"/>: a reply echoes the message up to here.</summary>
    public int QuestionEnd { get; }

    /// <summary>The query has an OPT record (EDNS, RFC 6891).</summary>
    public bool HasEdns { get; }

    public byte EdnsVersion { get; }

    /// <summary>The DO bit of the query's OPT record (RFC 3225): copied into the response, whatever we sign.</summary>
    public bool DnssecOk { get; }

    /// <summary>The UDP payload size the client announced, at least 512.</summary>
    public int UdpSize { get; }

    /// <summary>The most a UDP reply to this client may carry: its size, capped at ours.</summary>
    public int UdpLimit => Math.Min(UdpSize, HasEdns ? DnsLimits.EdnsUdp : DnsLimits.ClassicUdp);

    /// <summary>The most this reply may carry on its transport.</summary>
    public int ResponseLimit => Tcp ? DnsLimits.MaxMessage : UdpLimit;

    /// <summary>The <paramref name="index"/>-th label from the left, lower-cased, without its length.</summary>
    public ReadOnlySpan<byte> Label(int index)
    {
        var start = _labelStarts[index];
        return Name.Slice(start + 1, Name[start]);
    }

    /// <summary>
    /// Where the name from the <paramref name="index"/>-th label on starts in <see cref="Name"/> (past the last
    /// label: the root).
    /// </summary>
    public int SuffixStart(int index) => index == LabelCount ? Name.Length - 1 : _labelStarts[index];

    /// <summary>
    /// Whether the name is <paramref name="apex"/> or below it; <paramref name="depth"/> is then how many labels
    /// stand in front of the apex (0: the apex itself).
    /// </summary>
    public bool IsInZone(ReadOnlySpan<byte> apex, int apexLabels, out int depth)
    {
        depth = LabelCount - apexLabels;
        return depth >= 0 && Name[SuffixStart(depth)..].SequenceEqual(apex);
    }

    private static ushort U16(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt16BigEndian(b[at..]);
}
