using EdgeEru.Registry.Model;

namespace EdgeEru.RuleGraphView;

/// <summary>A domain's rule graph as the renderer takes it: nodes with a line each saying what they do (pure).</summary>
public static class RuleGraphLabels
{
    /// <summary>The renderer, an ES module exporting <c>graph(domain)</c>: an SVG element of the domain's nodes and edges.</summary>
    public static string Script { get; } = Read("EdgeEru.RuleGraphView.rule-graph.js");

    /// <summary>One line saying what a node does.</summary>
    public static string Label(LbNode n) => n.Type switch
    {
        "path" => $"path {n.Match} {n.Value}" + (n.StripPrefix ? " (strip)" : n.Rewrite is not null ? $" → {n.Rewrite}" : ""),
        "method" => "method " + string.Join("|", n.Values ?? []),
        "header" or "query" or "cookie" => $"{n.Type} {n.Name} {n.Match}" + (n.Value is null ? "" : $" {n.Value}"),
        "ua" => $"ua ~ {n.Value}",
        "ip" => "ip in " + string.Join(", ", n.Cidrs ?? []),
        "percent" => $"{n.Percent}% by {n.Key ?? "ip"}",
        "backend" => $"{n.Select?.App}.{n.Select?.Entrypoint}:{n.Select?.Port}"
            + (n.Select?.Tags is { Length: > 0 } tags ? " [" + string.Join(",", tags) + "]" : ""),
        "redirect" => $"{n.Status} → {n.Location}",
        "respond" => $"respond {n.Status}",
        _ => n.Type,
    };

    private static string Read(string name)
    {
        using var s = typeof(RuleGraphLabels).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"{name} is not embedded");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
