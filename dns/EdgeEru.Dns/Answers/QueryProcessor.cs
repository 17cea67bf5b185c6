using EdgeEru.Dns.Request;
using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Answers;

/// <summary>
/// The server's whole protocol logic, with no I/O: a query's bytes in, the response's bytes out. The query is
/// parsed once (<see cref="DnsQuery"/>), looked up in the zone it falls in by its shape (<see cref="ZoneNames"/>,
/// <see cref="ReverseNames"/>) and written by copying pre-encoded records (<see cref="ResponseWriter"/>):
/// the hot path allocates nothing.
/// </summary>
internal sealed class QueryProcessor(Func<DnsTable?> table)
{
    public QueryOutcome Process(ReadOnlySpan<byte> message, Span<byte> response, bool tcp)
    {
        var query = new DnsQuery(message, tcp, stackalloc byte[DnsLimits.MaxName], stackalloc int[DnsLimits.MaxLabels]);
        switch (query.Problem)
        {
            case QueryProblem.NotAQuery: return default; // nothing to answer, or a response: never reply
            case QueryProblem.NotImplemented: return ResponseWriter.HeaderOnly(message, response, DnsRcode.NotImp, query.QType);
            case QueryProblem.Malformed: return ResponseWriter.HeaderOnly(message, response, DnsRcode.FormErr, query.QType);
        }

        var w = new ResponseWriter(response, query);
        if (query.HasEdns && query.EdnsVersion != 0) return w.Finish(DnsRcode.BadVers, authoritative: false);
        if (query.QType == DnsType.OPT) return w.Finish(DnsRcode.FormErr, authoritative: false);
        if (query.QClass is not (DnsClass.IN or DnsClass.ANY)) return w.Finish(DnsRcode.Refused, authoritative: false);

        var t = table();
        if (t is null) return w.Finish(DnsRcode.ServFail, authoritative: false); // no snapshot yet since start
        foreach (var zone in t.Zones)
        {
            if (!query.IsInZone(zone.Apex, zone.ApexLabels, out var depth)) continue;
            if (IsZoneTransfer(query.QType)) return w.Finish(DnsRcode.Refused, authoritative: false);
            return ZoneNames.Answer(ref w, query, zone, depth);
        }
        foreach (var zone in t.Reverse)
        {
            if (!query.IsInZone(zone.Apex, zone.ApexLabels, out var depth)) continue;
            if (IsZoneTransfer(query.QType)) return w.Finish(DnsRcode.Refused, authoritative: false);
            return ReverseNames.Answer(ref w, query, t, zone, depth);
        }
        // Not ours: REFUSED (we are not an open resolver), unless the server forwards it for this client.
        return w.Finish(DnsRcode.Refused, authoritative: false) with { NotOurs = true, ClientUdpLimit = query.UdpLimit };
    }

    private static bool IsZoneTransfer(ushort qtype) => qtype is DnsType.AXFR or DnsType.IXFR;
}
