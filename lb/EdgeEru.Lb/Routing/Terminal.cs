using EdgeEru.Lb.Backends;
using EdgeEru.Registry.Model;

namespace EdgeEru.Lb.Routing;

/// <summary>
/// Where a walk through a graph ends: one type per kind of terminal node, decided when the graph is compiled
/// (a request asks which type it got, never what a node's type string says).
/// </summary>
internal abstract class Terminal(string id, int index, LbNode node)
{
    public string Id { get; } = id;
    public int Index { get; } = index;

    /// <summary>The node as the registry holds it (for the admin API and the dashboard).</summary>
    public LbNode Node { get; } = node;

    /// <summary>The terminal of a node that validation accepted as one (backend, redirect, respond).</summary>
    public static Terminal Compile(string id, int index, LbNode node) => node.Type switch
    {
        "backend" => new BackendTerminal(id, index, node),
        "redirect" => new RedirectTerminal(id, index, node),
        "respond" => new RespondTerminal(id, index, node),
        _ => throw new ArgumentException($"node \"{id}\": \"{node.Type}\" is not a terminal type", nameof(node)),
    };
}

/// <summary>Forwards the request to one of the backend's live workloads.</summary>
internal sealed class BackendTerminal(string id, int index, LbNode node) : Terminal(id, index, node)
{
    public BackendSettings Backend { get; } = BackendSettings.Compile(id, node.Options);
}

/// <summary>Answers with a redirect to a Location made from a template.</summary>
internal sealed class RedirectTerminal(string id, int index, LbNode node) : Terminal(id, index, node)
{
    public int Status { get; } = node.Status;

    /// <summary>The Location: the template with the request's scheme, host (with port), path and query ("?..." or "").</summary>
    public string Location(string scheme, string host, string path, string query) => Node.Location!
        .Replace("{scheme}", scheme, StringComparison.Ordinal)
        .Replace("{host}", host, StringComparison.Ordinal)
        .Replace("{path}", path, StringComparison.Ordinal)
        .Replace("{query}", query, StringComparison.Ordinal);
}

/// <summary>Answers with a fixed status, and optionally a body and its content type.</summary>
internal sealed class RespondTerminal(string id, int index, LbNode node) : Terminal(id, index, node)
{
    public int Status { get; } = node.Status;
    public string? ContentType { get; } = node.ContentType;
    public string? Body { get; } = node.Body;
}
