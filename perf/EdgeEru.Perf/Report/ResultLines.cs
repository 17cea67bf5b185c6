using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeEru.Perf.Report;

/// <summary>One benchmark's outcome: its RESULT figures, or why there are none.</summary>
public sealed record BenchmarkOutcome(string Name, JsonObject? Figures, string? Failure)
{
    /// <summary>A figure as a number; null when absent or not numeric (some figures are strings or booleans).</summary>
    public double? Number(string key)
    {
        if (Figures is null || !Figures.TryGetPropertyValue(key, out var node) || node is not JsonValue v) return null;
        if (v.TryGetValue<double>(out var d)) return d;
        if (v.TryGetValue<string>(out var s)
            && double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out d))
            return d;
        return null;
    }
}

/// <summary>
/// Reads the lines the benchmarks leave: <c>RESULT NAME {json}</c> (each benchmark's last line) and
/// <c>FAILED NAME reason</c> (written by <c>perf/run.sh all</c> for a benchmark that is missing or failed).
/// Lines starting with <c>#</c> are notes (<see cref="Notes"/>); every other line is ignored; a later line for the same
/// benchmark replaces an earlier one.
/// </summary>
public static class ResultLines
{
    public static IReadOnlyList<BenchmarkOutcome> Parse(IEnumerable<string> lines, out IReadOnlyList<string> problems)
    {
        var byName = new Dictionary<string, BenchmarkOutcome>(StringComparer.Ordinal);
        var order = new List<string>();
        var bad = new List<string>();
        var lineNo = 0;
        foreach (var raw in lines)
        {
            lineNo++;
            var line = raw.Trim();
            BenchmarkOutcome? outcome = null;
            if (line.StartsWith("RESULT ", StringComparison.Ordinal))
            {
                var rest = line[7..].TrimStart();
                var space = rest.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0)
                {
                    bad.Add($"line {lineNo}: RESULT without a JSON object");
                    continue;
                }
                var name = rest[..space];
                try
                {
                    if (JsonNode.Parse(rest[(space + 1)..]) is JsonObject o) outcome = new BenchmarkOutcome(name, o, null);
                    else bad.Add($"line {lineNo}: RESULT {name}: the figures are not a JSON object");
                }
                catch (JsonException ex)
                {
                    bad.Add($"line {lineNo}: RESULT {name}: invalid JSON ({ex.Message})");
                }
            }
            else if (line.StartsWith("FAILED ", StringComparison.Ordinal))
            {
                var rest = line[7..].TrimStart();
                var space = rest.IndexOf(' ', StringComparison.Ordinal);
                var name = space < 0 ? rest : rest[..space];
                if (name.Length > 0) outcome = new BenchmarkOutcome(name, null, space < 0 ? "failed" : rest[(space + 1)..].Trim());
            }
            if (outcome is null) continue;
            if (!byName.ContainsKey(outcome.Name)) order.Add(outcome.Name);
            byName[outcome.Name] = outcome;
        }
        problems = bad;
        return order.Select(n => byName[n]).ToList();
    }

    /// <summary>Lines starting with <c>#</c>: where and when the figures were measured, shown at the top of the report.</summary>
    public static IReadOnlyList<string> Notes(IEnumerable<string> lines) =>
        lines.Select(l => l.Trim()).Where(l => l.StartsWith('#')).Select(l => l.TrimStart('#').Trim()).Where(l => l.Length > 0).ToList();
}
