using EdgeEru.Dns.Request;
using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;

namespace EdgeEru.Dns.Answers;

/// <summary>
/// An app, <c>{app}.{zone}</c>; a service, <c>{entrypoint}.{app}.{zone}</c>; below a service, a subset
/// (an instance's ident or a tag), a protocol <c>_{proto}</c> and SRV names <c>_{port}._{proto}</c>.
/// </summary>
internal static class ServiceNames
{
    /// <summary>An app exists, with no data, while it has a service.</summary>
    public static QueryOutcome App(ref ResponseWriter w, ZoneAnswers zone, ReadOnlySpan<byte> app) =>
        zone.Apps.ContainsKey(LookupKey.Chars(app, stackalloc char[63]))
            ? w.NoData()
            : w.NxDomain();

    /// <summary>The service named by the two labels just in front of the zone, or a name below it.</summary>
    /// <param name="depth">2 to 4 labels in front of the zone's apex.</param>
    public static QueryOutcome Answer(ref ResponseWriter w, scoped in DnsQuery query, ZoneAnswers zone, int depth)
    {
        var key = LookupKey.Dotted(query.Label(depth - 2), query.Label(depth - 1), stackalloc char[127]);
        if (!zone.Services.TryGetValue(key, out var service)) return w.NxDomain();
        var first = query.Label(0);
        return depth switch
        {
            2 => w.Records(service.A, service.AAAA, service.Txt, null),
            3 when first.Length > 0 && first[0] == '_' => SrvProtocol(ref w, service, first),
            3 => Subset(ref w, service, first),
            _ => Srv(ref w, service, first, query.Label(1)),
        };
    }

    /// <summary><c>{ident}</c> or <c>{tag}</c> in front of the service: one instance, or the instances with the tag.</summary>
    private static QueryOutcome Subset(ref ResponseWriter w, ServiceAnswers service, ReadOnlySpan<byte> label)
    {
        var key = LookupKey.Chars(label, stackalloc char[63]);
        if (service.Instances.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key, out var at))
            return w.Instance(service.A, service.AAAA, at);
        return service.Below.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key, out var subset)
            ? w.Records(subset.A, subset.AAAA, null, null)
            : w.NxDomain();
    }

    /// <summary><c>_{proto}</c> in front of the service: on the way to SRV names, so it exists with no data.</summary>
    private static QueryOutcome SrvProtocol(ref ResponseWriter w, ServiceAnswers service, ReadOnlySpan<byte> proto) =>
        service.SrvProtocols.GetAlternateLookup<ReadOnlySpan<char>>().Contains(LookupKey.Chars(proto, stackalloc char[63]))
            ? w.NoData()
            : w.NxDomain();

    /// <summary><c>_{port}._{proto}</c> in front of the service: SRV per live instance and port.</summary>
    private static QueryOutcome Srv(ref ResponseWriter w, ServiceAnswers service, ReadOnlySpan<byte> port, ReadOnlySpan<byte> proto)
    {
        if (port.Length < 2 || port[0] != '_' || proto.Length < 2 || proto[0] != '_') return w.NxDomain();
        var key = LookupKey.Dotted(port, proto, stackalloc char[127]);
        return service.Srv.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key, out var srv)
            ? w.Records(null, null, null, srv)
            : w.NxDomain();
    }
}
