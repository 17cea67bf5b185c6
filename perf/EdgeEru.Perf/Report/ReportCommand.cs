namespace EdgeEru.Perf.Report;

/// <summary><c>perf/run.sh report FILE [--out DIR]</c>: builds report.md and the SVG plots from saved RESULT lines.</summary>
internal static class ReportCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 1 || args[0].StartsWith("--", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync("usage: perf/run.sh report FILE_WITH_RESULT_LINES [--out DIR]");
            return 2;
        }
        var file = args[0];
        var outIndex = Array.IndexOf(args, "--out");
        var outDir = outIndex >= 0 && outIndex + 1 < args.Length ? args[outIndex + 1] : "perf";
        if (!File.Exists(file))
        {
            await Console.Error.WriteLineAsync($"perf report: {file} does not exist");
            return 2;
        }
        if (!Directory.Exists(outDir))
        {
            await Console.Error.WriteLineAsync($"perf report: output directory {outDir} does not exist");
            return 2;
        }
        var lines = await File.ReadAllLinesAsync(file);
        var outcomes = ResultLines.Parse(lines, out var problems);
        foreach (var p in problems) await Console.Error.WriteLineAsync($"perf report: {file}: {p}");
        if (outcomes.Count == 0)
        {
            await Console.Error.WriteLineAsync($"perf report: {file} has no RESULT or FAILED lines");
            return 1;
        }
        var report = ReportBuilder.Build(outcomes, Path.GetFileName(file), DateTimeOffset.UtcNow, problems, ResultLines.Notes(lines));
        await File.WriteAllTextAsync(Path.Combine(outDir, "report.md"), report.Markdown);
        foreach (var (name, svg) in report.Svgs) await File.WriteAllTextAsync(Path.Combine(outDir, name), svg);
        Console.WriteLine($"wrote {Path.Combine(outDir, "report.md")} and {report.Svgs.Count} plots " +
            $"({string.Join(", ", report.Svgs.Keys)})");
        return 0;
    }
}
