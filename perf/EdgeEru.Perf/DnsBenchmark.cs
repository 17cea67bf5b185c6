using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;

namespace EdgeEru.Perf;

/// <summary>
/// dns: our server and Knot DNS serving the same names, each loaded by dnsperf with the same query mix in the same
/// run: the dev cluster's small zone (six instances), then 10,000 services of 100,000 workloads; then propagation
/// and memory at the large one.
/// </summary>
internal static partial class DnsBenchmark
{
    private const ushort A = 1, SRV = 33;

    public static async Task<int> RunAsync(string[] args)
    {
        var workloads = BenchCluster.Arg(args, "--workloads", 100_000);
        var services = BenchCluster.Arg(args, "--services", 10_000);
        var seconds = BenchCluster.Arg(args, "--seconds", 10);
        var rounds = BenchCluster.Arg(args, "--rounds", 2);
        // --dns-env K=V,K=V: environment for eru-dns (e.g. DOTNET_GC* knobs); --no-qps: memory and propagation alone.
        var env = BenchCluster.ArgString(args, "--dns-env", "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        if (args.Contains("--no-qps")) rounds = 0;
        // The dev cluster's zone first (two services, six instances: every answer hot in any cache), then the large one.
        var small = rounds == 0 ? null : await MeasureZoneAsync(6, 2, seconds, rounds, propagation: false, env);
        var large = await MeasureZoneAsync(workloads, services, seconds, rounds, propagation: true, env);
        if (small is null)
        {
            Console.WriteLine($"eru-dns: working set {large.WorkingSetMb:F0} MB, managed heap {large.ManagedHeapMb:F0} MB, " +
                $"propagation p50 {Stats.Percentile(large.FromAck, 50):F1} ms p99 {Stats.Percentile(large.FromAck, 99):F1} ms");
            return 0;
        }
        var smallRatio = small.Eru.Qps / small.Knot.Qps;
        var ratio = large.Eru.Qps / large.Knot.Qps;
        var propagationP99 = Stats.Percentile(large.FromAck, 99);
        var result = new Dictionary<string, object>
        {
            ["workloads"] = workloads,
            ["services"] = services,
            ["seconds_per_run"] = seconds,
            ["eru_qps"] = Math.Round(large.Eru.Qps),
            ["knot_qps"] = Math.Round(large.Knot.Qps),
            ["qps_ratio_vs_knot"] = Math.Round(ratio, 3),
            ["eru_avg_latency_ms"] = Math.Round(large.Eru.AvgLatencyMs, 3),
            ["knot_avg_latency_ms"] = Math.Round(large.Knot.AvgLatencyMs, 3),
            ["eru_lost"] = large.Eru.Lost,
            ["knot_lost"] = large.Knot.Lost,
            ["answer_mismatches_of_300"] = large.Mismatches,
            ["small_zone_workloads"] = 6,
            ["small_eru_qps"] = Math.Round(small.Eru.Qps),
            ["small_knot_qps"] = Math.Round(small.Knot.Qps),
            ["small_qps_ratio_vs_knot"] = Math.Round(smallRatio, 3),
            ["small_eru_avg_latency_ms"] = Math.Round(small.Eru.AvgLatencyMs, 3),
            ["small_knot_avg_latency_ms"] = Math.Round(small.Knot.AvgLatencyMs, 3),
            ["small_answer_mismatches"] = small.Mismatches,
            ["propagation_p50_ms"] = Stats.Round(Stats.Percentile(large.FromAck, 50)),
            ["propagation_p99_ms"] = Stats.Round(propagationP99),
            ["eru_working_set_mb"] = Math.Round(large.WorkingSetMb, 1),
            ["eru_managed_heap_mb"] = Math.Round(large.ManagedHeapMb, 1),
            ["small_eru_working_set_mb"] = Math.Round(small.WorkingSetMb, 1),
            ["targets_met"] = smallRatio >= 1.2 && ratio >= 1.3 && propagationP99 <= 20 && large.WorkingSetMb <= 250
                && large.Mismatches == 0 && small.Mismatches == 0,
        };
        Console.WriteLine("RESULT dns " + JsonSerializer.Serialize(result));
        return 0;
    }

    private sealed record ZoneFigures(
        DnsperfResult Eru, DnsperfResult Knot, int Mismatches, List<double> FromAck, double WorkingSetMb, double ManagedHeapMb);

    /// <summary>
    /// One zone: a fresh etcd with <paramref name="workloads"/> in <paramref name="services"/>, eru-dns (the real binary)
    /// and Knot from a zone file of the same names, the same answers checked on a sample, then dnsperf on each in turn;
    /// with <paramref name="propagation"/>, how long a registry change takes to reach an answer. Memory is read last.
    /// </summary>
    private static async Task<ZoneFigures> MeasureZoneAsync(
        int workloads, int services, int seconds, int rounds, bool propagation, IReadOnlyDictionary<string, string> env)
    {
        const int nodes = 200;
        var dir = Directory.CreateTempSubdirectory("eru-dns-bench-").FullName;
        try
        {
            await using var etcd = await EtcdServer.StartAsync();
            using var conn = new EtcdConnection(
                new RegistryOptions { Endpoints = etcd.ClientUrl, RequestTimeout = TimeSpan.FromSeconds(60) });
            var store = new RegistryStore(conn);
            await using var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(10));
            var sw = Stopwatch.StartNew();
            await BenchCluster.LoadAsync(store, lease.Id, workloads, services, Math.Min(nodes, workloads));
            Console.WriteLine($"loaded {workloads} workloads in {services} services in {sw.Elapsed.TotalSeconds:F1}s");

            // Ours, as the real binary.
            var ourPort = Ports.FreeTcp();
            var httpPort = Ports.FreeTcp();
            var dll = Path.Combine(AppContext.BaseDirectory, "..", "dns", "eru-dns.dll");
            await using var ours = ChildProcess.Start("dotnet", [dll, "--Registry:Endpoints", etcd.ClientUrl,
                "--Dns:Port", ourPort.ToString(), "--Http:Urls", $"http://127.0.0.1:{httpPort}",
                "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning"], environment: env);
            using var ourProbe = new DnsProbe(ourPort);
            sw.Restart();
            var sample = $"web.app{(services - 2) / 2}.eru";
            await UntilAsync(() => ourProbe.Ask(sample, A) is (0, > 0), TimeSpan.FromSeconds(120), "eru-dns serving", ours);
            Console.WriteLine($"eru-dns serving after {sw.Elapsed.TotalSeconds:F1}s");

            var mismatches = 0;
            var none = new DnsperfResult(0, 0, 0, 0);
            var best = new Dictionary<string, DnsperfResult> { ["eru"] = none, ["knot"] = none };
            if (rounds > 0)
            {
                // Knot, from a zone file with the same names and TTLs.
                var knotPort = Ports.FreeTcp();
                WriteKnot(dir, knotPort, workloads, services);
                await using var knot = ChildProcess.Start(Tools.Find("knotd", "knot"), ["-c", Path.Combine(dir, "knot.conf")]);
                using var knotProbe = new DnsProbe(knotPort);
                sw.Restart();
                await UntilAsync(() => knotProbe.Ask(sample, A) is (0, > 0), TimeSpan.FromSeconds(120), "knot serving", knot);
                Console.WriteLine($"knot serving after {sw.Elapsed.TotalSeconds:F1}s");

                // The same answers from both (rcode and answer count) for a sample of the mix.
                var queries = QueryMix(workloads, services, 200_000, new Random(1));
                foreach (var (name, type) in queries.Take(300))
                    if (!Equals(ourProbe.Ask(name, type), knotProbe.Ask(name, type))) mismatches++;
                var queryFile = Path.Combine(dir, "queries.txt");
                await File.WriteAllLinesAsync(queryFile, queries.Select(q => $"{q.Name} {(q.Type == SRV ? "SRV" : "A")}"));

                var runs = new List<(string Who, DnsperfResult R)>();
                for (var round = 0; round < rounds; round++)
                {
                    runs.Add(("eru", await DnsperfAsync(ourPort, queryFile, seconds)));
                    runs.Add(("knot", await DnsperfAsync(knotPort, queryFile, seconds)));
                }
                best = runs.GroupBy(r => r.Who).ToDictionary(g => g.Key, g => g.MaxBy(r => r.R.Qps).R);
                foreach (var (who, r) in runs)
                    Console.WriteLine($"{who,-5} {r.Qps,10:F0} qps  avg {r.AvgLatencyMs:F3} ms  sd {r.StdDevMs:F3} ms  lost {r.Lost}");
            }

            // Propagation: a workload turns healthy in etcd; how long until the first answer that has it.
            var fromAck = new List<double>();
            var rnd = new Random(2);
            for (var k = 0; propagation && k < 200; k++)
            {
                var i = rnd.Next(workloads);
                var (app, ep) = BenchCluster.Service(i, services);
                var name = $"{BenchCluster.Ident(i)}.{ep}.{app}.eru";
                await store.PutAsync(Kinds.WorkloadStatus, BenchCluster.Status(i, nodes, healthy: false), lease.Id);
                await UntilAsync(() => ourProbe.Ask(name, A) is (3, _), TimeSpan.FromSeconds(10), $"{name} gone", ours);
                await store.PutAsync(Kinds.WorkloadStatus, BenchCluster.Status(i, nodes, healthy: true), lease.Id);
                var acked = Stopwatch.GetTimestamp();
                while (ourProbe.Ask(name, A) is not (0, > 0))
                    if (Stopwatch.GetElapsedTime(acked) > TimeSpan.FromSeconds(10)) throw new TimeoutException($"{name} never came back");
                fromAck.Add(Stopwatch.GetElapsedTime(acked).TotalMilliseconds);
            }

            var metrics = await new HttpClient().GetStringAsync(new Uri($"http://127.0.0.1:{httpPort}/metrics"));
            foreach (var line in metrics.Split('\n').Where(l => l.StartsWith("eru_dns_table_build_seconds_sum", StringComparison.Ordinal)
                || l.StartsWith("eru_dns_table_build_seconds_count", StringComparison.Ordinal)
                || l.StartsWith("eru_registry_apply_duration_seconds_sum", StringComparison.Ordinal)
                || l.StartsWith("eru_registry_apply_duration_seconds_count", StringComparison.Ordinal)
                || l.StartsWith("dotnet_collection_count_total", StringComparison.Ordinal)))
                Console.WriteLine("  " + line);
            var workingSet = Metric(metrics, "process_working_set_bytes") / 1e6;
            var managed = Metric(metrics, "dotnet_total_memory_bytes") / 1e6;
            Console.WriteLine($"eru-dns at {workloads} workloads: working set {workingSet:F0} MB, managed heap {managed:F0} MB");
            return new ZoneFigures(best["eru"], best["knot"], mismatches, fromAck, workingSet, managed);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>40% service names, 20% tag subsets, 20% SRV, 20% names that do not exist.</summary>
    private static List<(string Name, ushort Type)> QueryMix(int workloads, int services, int count, Random rnd)
    {
        var list = new List<(string, ushort)>(count);
        for (var k = 0; k < count; k++)
        {
            var i = rnd.Next(workloads);
            var (app, ep) = BenchCluster.Service(i, services);
            var roll = rnd.Next(10);
            list.Add(roll switch
            {
                < 4 => ($"{ep}.{app}.eru", A),
                < 6 => ($"{BenchCluster.Tag(i)}.{ep}.{app}.eru", A),
                < 8 => ($"_http._tcp.{ep}.{app}.eru", SRV),
                _ => ($"missing{k % 1000}.{ep}.{app}.eru", A),
            });
        }
        return list;
    }

    private static void WriteKnot(string dir, int port, int workloads, int services)
    {
        var zone = new StringBuilder();
        zone.AppendLine("$ORIGIN eru.\n$TTL 5");
        zone.AppendLine("@ 5 IN SOA ns1.eru. hostmaster.eru. 1 3600 600 86400 5");
        zone.AppendLine("@ 5 IN NS ns1.eru.\nns1 5 IN A 127.0.0.1");
        for (var i = 0; i < workloads; i++)
        {
            var (app, ep) = BenchCluster.Service(i, services);
            var svc = $"{ep}.{app}";
            var ip = BenchCluster.Ip(i);
            zone.Append(svc).Append(" A ").AppendLine(ip);
            zone.Append(BenchCluster.Tag(i)).Append('.').Append(svc).Append(" A ").AppendLine(ip);
            zone.Append("v1.").Append(svc).Append(" A ").AppendLine(ip);
            zone.Append(BenchCluster.Ident(i)).Append('.').Append(svc).Append(" A ").AppendLine(ip);
            zone.Append("_http._tcp.").Append(svc).Append(" SRV 1 1 8080 ").Append(BenchCluster.Ident(i)).Append('.').Append(svc)
                .AppendLine(".eru.");
        }
        File.WriteAllText(Path.Combine(dir, "eru.zone"), zone.ToString());
        Directory.CreateDirectory(Path.Combine(dir, "run"));
        File.WriteAllText(Path.Combine(dir, "knot.conf"), $"""
            server:
                rundir: "{dir}/run"
                listen: 127.0.0.1@{port}
            database:
                storage: "{dir}"
            log:
              - target: stderr
                any: warning
            template:
              - id: default
                storage: "{dir}"
                semantic-checks: off
                zonefile-load: whole
                journal-content: none
            zone:
              - domain: eru.
                file: "eru.zone"
            """);
    }

    private sealed record DnsperfResult(double Qps, double AvgLatencyMs, double StdDevMs, long Lost);

    private static async Task<DnsperfResult> DnsperfAsync(int port, string queryFile, int seconds)
    {
        var output = new StringBuilder();
        await using (var p = ChildProcess.Start(Tools.Find("dnsperf", "dnsperf"),
            ["-s", "127.0.0.1", "-p", port.ToString(), "-d", queryFile, "-l", seconds.ToString(), "-c", "8", "-q", "256", "-t", "2"],
            line => { lock (output) output.AppendLine(line); }))
        {
            await UntilAsync(() => p.HasExited, TimeSpan.FromSeconds(seconds + 30), "dnsperf done", p);
        }
        var text = output.ToString();
        double Num(Regex r) => double.Parse(
            r.Match(text) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException("dnsperf said:\n" + text),
            CultureInfo.InvariantCulture);
        return new DnsperfResult(Num(QpsLine()), Num(AvgLine()) * 1000, Num(SdLine()) * 1000, (long)Num(LostLine()));
    }

    [GeneratedRegex(@"Queries per second:\s+([\d.]+)")] private static partial Regex QpsLine();
    [GeneratedRegex(@"Average Latency \(s\):\s+([\d.]+)")] private static partial Regex AvgLine();
    [GeneratedRegex(@"Latency StdDev \(s\):\s+([\d.]+)")] private static partial Regex SdLine();
    [GeneratedRegex(@"Queries lost:\s+(\d+)")] private static partial Regex LostLine();

    private static double Metric(string metrics, string name) =>
        metrics.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();

    private static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, ChildProcess process)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (process.HasExited && what != "dnsperf done")
                throw new InvalidOperationException($"{what}: process exited:\n{process.OutputTail()}");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what}: not within {timeout.TotalSeconds:F0}s:\n{process.OutputTail()}");
            await Task.Delay(20);
        }
    }
}
