using EdgeEru.Dns.Request;
using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;

namespace EdgeEru.Dns.Answers;

/// <summary>Node names: <c>{node}.node.{zone}</c>, and <c>node.{zone}</c> on the way to them.</summary>
internal static class NodeNames
{
    /// <summary>The label under which node names live (so no app may be called "node" in DNS).</summary>
    public static bool IsNodeLabel(ReadOnlySpan<byte> label) => label.SequenceEqual("node"u8);

    public static QueryOutcome Answer(ref ResponseWriter w, scoped in DnsQuery query, ZoneAnswers zone, int depth)
    {
        if (depth == 1) return zone.Nodes.Count > 0 ? w.NoData() : w.NxDomain();
        if (depth == 2 && zone.Nodes.GetAlternateLookup<ReadOnlySpan<char>>()
                .TryGetValue(LookupKey.Chars(query.Label(0), stackalloc char[63]), out var node))
            return w.Records(node.A, node.AAAA, node.Txt, null);
        return w.NxDomain();
    }
}
