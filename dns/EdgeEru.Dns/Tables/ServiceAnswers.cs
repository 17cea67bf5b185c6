namespace EdgeEru.Dns.Tables;

/// <summary>Everything one service (<c>{entrypoint}.{app}.{zone}</c>) answers, pre-encoded.</summary>
internal sealed class ServiceAnswers
{
    public RRset? A { get; init; }
    public RRset? AAAA { get; init; }
    public RRset? Txt { get; init; }

    /// <summary>Tags: the first label below the service, naming the instances with the tag.</summary>
    public Dictionary<string, Subset> Below { get; init; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Instance idents, the first label below the service too (an ident wins over an equal tag): where the instance's
    /// own records are in <see cref="A"/> and <see cref="AAAA"/>. An index, not a set per instance: at 100k instances
    /// that is 10 MB less to hold.
    /// </summary>
    public Dictionary<string, InstanceRecords> Instances { get; init; } = new(StringComparer.Ordinal);

    /// <summary>SRV sets by "_{port}._{proto}".</summary>
    public Dictionary<string, RRset> Srv { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Protocol labels ("_tcp") that have SRV names below them: those names exist with no data.</summary>
    public HashSet<string> SrvProtocols { get; init; } = new(StringComparer.Ordinal);

    /// <summary>No live instance (kept only when empty services answer NODATA).</summary>
    public bool IsEmpty => A is null && AAAA is null;
}

/// <summary>Where one instance's record is in its service's A and AAAA sets (-1: none of that family).</summary>
internal readonly record struct InstanceRecords(int A, int AAAA);

/// <summary>The addresses of one tag subset.</summary>
internal sealed class Subset
{
    public RRset? A { get; init; }
    public RRset? AAAA { get; init; }
}

/// <summary>A node's own name, <c>{node}.node.{zone}</c>.</summary>
internal sealed class NodeAnswers
{
    public RRset? A { get; init; }
    public RRset? AAAA { get; init; }
    public RRset? Txt { get; init; }
}

/// <summary>An operator's static records at one name (<c>dns/records</c>); empty for a name on the way to one.</summary>
internal sealed class StaticAnswers
{
    public RRset? A { get; init; }
    public RRset? AAAA { get; init; }
    public RRset? Txt { get; init; }
    public RRset? Srv { get; init; }
    public RRset? Mx { get; init; }
}
