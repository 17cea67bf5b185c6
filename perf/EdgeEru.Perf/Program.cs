using EdgeEru.Perf;

var name = args.Length > 0 ? args[0] : "";
// Not a benchmark: builds perf/report.md and its plots from saved RESULT lines.
if (name == "report") return await EdgeEru.Perf.Report.ReportCommand.RunAsync(args[1..]);
IReadOnlyDictionary<string, Func<string[], Task<int>>> benchmarks = new Dictionary<string, Func<string[], Task<int>>>
{
    ["registry"] = RegistryBenchmark.RunAsync,
    ["dns"] = DnsBenchmark.RunAsync,
    ["lb"] = LbBenchmark.RunAsync,
    ["agent"] = AgentBenchmark.RunAsync,
    ["ssh"] = SshBenchmark.RunAsync,
    ["schedule"] = ScheduleBenchmark.RunAsync,
    ["deploy"] = DeployBenchmark.RunAsync,
    ["self-hosting"] = SelfHostingBenchmark.RunAsync,
    ["chaos"] = ChaosBenchmark.RunAsync,
    ["multidc"] = MultiDcBenchmark.RunAsync,
};
if (!benchmarks.TryGetValue(name, out var run))
{
    Console.Error.WriteLine($"usage: perf/run.sh NAME [options]; NAME is one of: {string.Join(", ", benchmarks.Keys)}");
    return 2;
}
return await run(args[1..]);
