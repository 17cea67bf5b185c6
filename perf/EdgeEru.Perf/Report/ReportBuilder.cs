using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace EdgeEru.Perf.Report;

/// <summary>The report: its markdown and the SVG plots it links (file name → document).</summary>
public sealed record PerfReport(string Markdown, IReadOnlyDictionary<string, string> Svgs);

/// <summary>
/// Builds perf/report.md and its plots from the benchmarks' RESULT lines. Pure: no I/O, no clock (the
/// caller passes the time and where the lines came from), so it is tested on saved lines.
/// </summary>
public static class ReportBuilder
{
    public static PerfReport Build(IReadOnlyList<BenchmarkOutcome> outcomes, string source, DateTimeOffset builtAt,
        IReadOnlyList<string>? inputProblems = null, IReadOnlyList<string>? notes = null)
    {
        var byName = outcomes.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var names = Figures.Benchmarks.Concat(outcomes.Select(o => o.Name).Where(n => !Figures.Benchmarks.Contains(n))).ToList();
        var md = new StringBuilder();
        md.AppendLine("# EdgeEru benchmarks").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Built by `perf/run.sh report` from `{source}` at {builtAt.UtcDateTime:yyyy-MM-dd HH:mm} UTC. " +
            $"Each benchmark runs its anchor — the tool users would otherwise pick — in the same run, on the same machine; " +
            $"**ratio = ours / anchor**. " +
            $"Whether a higher or a lower ratio is better depends on the figure (column *better*).").AppendLine();
        foreach (var n in notes ?? []) md.AppendLine(CultureInfo.InvariantCulture, $"> {n}  ");
        if (notes is { Count: > 0 }) md.AppendLine();

        md.AppendLine("## Runs").AppendLine();
        md.AppendLine("| benchmark | outcome |").AppendLine("|---|---|");
        foreach (var n in names)
        {
            var outcome = byName.TryGetValue(n, out var o)
                ? o.Figures is { } f ? $"RESULT with {f.Count} figures" : $"**failed**: {Cell(o.Failure ?? "")}"
                : "**not run**: no RESULT line in the input";
            md.AppendLine(CultureInfo.InvariantCulture, $"| {n} | {outcome} |");
        }
        foreach (var p in inputProblems ?? []) md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"- input problem: {Cell(p)}");
        md.AppendLine();

        md.AppendLine("## Ours next to the anchor").AppendLine();
        md.AppendLine("| benchmark | figure | ours | anchor | anchor's value | ratio | better | ours ahead |")
            .AppendLine("|---|---|--:|---|--:|--:|---|---|");
        var absent = new List<string>();
        foreach (var c in Figures.Comparisons)
        {
            if (!byName.TryGetValue(c.Benchmark, out var o) || o.Figures is null) continue;
            var ours = o.Number(c.Ours);
            var anchor = o.Number(c.Anchor);
            if (ours is null || anchor is null)
            {
                absent.Add($"{c.Benchmark}: {c.Figure} vs {c.AnchorName} (" +
                    string.Join(", ", new[] { (c.Ours, ours), (c.Anchor, anchor) }.Where(x => x.Item2 is null).Select(x => x.Item1)) +
                    " not in the RESULT line)");
                continue;
            }
            var ratio = anchor.Value == 0 ? "—" : (ours.Value / anchor.Value).ToString("0.###", CultureInfo.InvariantCulture);
            var ahead = anchor.Value == 0 ? "—" : (c.Better == Better.Higher ? ours >= anchor : ours <= anchor) ? "yes" : "no";
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Benchmark} | {Cell(c.Figure)} | {Value(ours.Value, c.Unit)} | {Cell(c.AnchorName)} " +
                $"| {Value(anchor.Value, c.Unit)} | {ratio} | {(c.Better == Better.Higher ? "higher" : "lower")} | {ahead} |");
        }
        md.AppendLine();
        foreach (var a in absent) md.AppendLine(CultureInfo.InvariantCulture, $"- not shown: {Cell(a)}");
        if (absent.Count > 0) md.AppendLine();

        // Benchmarks this report does not describe yet still show the ratios they computed themselves.
        var described = Figures.Comparisons.Select(c => c.Benchmark).ToHashSet(StringComparer.Ordinal);
        var otherRatios = outcomes.Where(o => o.Figures is not null && !described.Contains(o.Name))
            .SelectMany(o => o.Figures!.Where(kv => IsRatioKey(kv.Key)).Select(kv => (o.Name, kv.Key, kv.Value))).ToList();
        if (otherRatios.Count > 0)
        {
            md.AppendLine("Ratios that benchmarks without an entry in `Report/Figures.cs` computed themselves:").AppendLine();
            md.AppendLine("| benchmark | figure | value |").AppendLine("|---|---|--:|");
            foreach (var (n, k, v) in otherRatios) md.AppendLine(CultureInfo.InvariantCulture, $"| {n} | `{k}` | {Raw(v)} |");
            md.AppendLine();
        }

        md.AppendLine("## Targets").AppendLine();
        md.AppendLine("| benchmark | figure | value | target | met |").AppendLine("|---|---|--:|--:|---|");
        foreach (var t in Figures.Targets)
        {
            if (!byName.TryGetValue(t.Benchmark, out var o) || o.Figures is null || o.Number(t.Key) is not { } v) continue;
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {t.Benchmark} | {Cell(t.Figure)} | {Value(v, t.Unit)} | {t.Op} {Value(t.Limit, t.Unit)} " +
                $"| {(t.Met(v) ? "yes" : "**no**")} |");
        }
        md.AppendLine();

        var svgs = new Dictionary<string, string>(StringComparer.Ordinal);
        var plotLines = new List<string>();
        foreach (var chart in Figures.Charts)
        {
            if (!byName.TryGetValue(chart.Benchmark, out var o) || o.Figures is null) continue;
            var bars = new List<Bar>();
            var missing = new List<string>();
            foreach (var s in chart.Series)
                for (var i = 0; i < chart.Categories.Count; i++)
                {
                    if (o.Number(s.Keys[i]) is { } v && double.IsFinite(v) && v >= 0) bars.Add(new Bar(s.Name, chart.Categories[i], v));
                    else missing.Add(s.Keys[i]);
                }
            if (bars.Count == 0) continue;
            // A series with no bar at all (its keys absent) leaves the legend too.
            svgs[chart.File] = SvgChart.Render(chart.Title, chart.Unit, chart.Categories,
                chart.Series.Select(s => s.Name).Where(n => bars.Any(b => b.Series == n)).ToList(), bars);
            plotLines.Add($"![{chart.Title}]({chart.File})" + (missing.Count > 0
                ? $"  \n*bars left out: {string.Join(", ", missing.Select(m => $"`{m}`"))} not in the RESULT line*"
                : ""));
        }
        if (plotLines.Count > 0)
        {
            md.AppendLine("## Plots").AppendLine();
            foreach (var p in plotLines) md.AppendLine(p).AppendLine();
        }

        md.AppendLine("## Every figure").AppendLine();
        md.AppendLine("The RESULT lines as the benchmarks printed them (keys: see `perf/EdgeEru.Perf/*Benchmark.cs`).").AppendLine();
        foreach (var o in outcomes.Where(o => o.Figures is not null))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"### {o.Name}").AppendLine();
            md.AppendLine("| key | value |").AppendLine("|---|--:|");
            foreach (var (k, v) in o.Figures!) md.AppendLine(CultureInfo.InvariantCulture, $"| `{k}` | {Raw(v)} |");
            md.AppendLine();
        }
        return new PerfReport(md.ToString().TrimEnd() + "\n", svgs);
    }

    public static bool IsRatioKey(string key) =>
        key.Contains("ratio", StringComparison.Ordinal) || key.Contains("_vs_", StringComparison.Ordinal);

    private static string Value(double v, string unit) => $"{SvgChart.Format(v)} {unit}".TrimEnd();

    private static string Raw(JsonNode? v) => v is null ? "null" : Cell(v.ToJsonString());

    /// <summary>Text safe inside a markdown table cell.</summary>
    private static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal)
        .Replace("\r", "", StringComparison.Ordinal);
}
