using EdgeEru.Dns.Request;
using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Answers;

/// <summary>
/// Names in one of our zones, by shape: the apex, operators' static names (they come first), then
/// <c>{node}.node</c>, <c>{app}</c>, <c>{entrypoint}.{app}</c> and the names below a service.
/// </summary>
internal static class ZoneNames
{
    /// <param name="depth">How many labels stand in front of the zone's apex.</param>
    public static QueryOutcome Answer(ref ResponseWriter w, scoped in DnsQuery query, ZoneAnswers zone, int depth)
    {
        w.ForZone(zone.SoaTail, query.SuffixStart(depth));
        if (depth == 0) return Apex(ref w, zone, query.QType);
        if (zone.Static.Count > 0 && Static(query, zone, depth) is { } fixedName)
            return w.Records(fixedName.A, fixedName.AAAA, fixedName.Txt, fixedName.Srv, fixedName.Mx);
        if (NodeNames.IsNodeLabel(query.Label(depth - 1))) return NodeNames.Answer(ref w, query, zone, depth);
        return depth switch
        {
            1 => ServiceNames.App(ref w, zone, query.Label(0)),
            <= 4 => ServiceNames.Answer(ref w, query, zone, depth),
            _ => w.NxDomain(),
        };
    }

    private static QueryOutcome Apex(ref ResponseWriter w, ZoneAnswers zone, ushort qtype) => qtype switch
    {
        DnsType.SOA or DnsType.ANY => w.Soa(),
        DnsType.NS => w.Answer(zone.Ns),
        _ => w.NoData(),
    };

    /// <summary>An operator's static name, relative to the zone: "db" for db.eru., "x.y" for x.y.eru.</summary>
    private static StaticAnswers? Static(scoped in DnsQuery query, ZoneAnswers zone, int depth)
    {
        var name = query.Name;
        var relativeLength = query.SuffixStart(depth) - 1;
        Span<char> relative = stackalloc char[DnsLimits.MaxName];
        for (var i = 0; i < relativeLength; i++) relative[i] = (char)name[i + 1];
        for (var l = 1; l < depth; l++) relative[query.SuffixStart(l) - 1] = '.';
        return zone.Static.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(relative[..relativeLength], out var found) ? found : null;
    }
}
