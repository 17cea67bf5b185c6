using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Perf;

/// <summary>
/// lb: wrk against the backend directly, nginx proxying to it (upstream keepalive), and eru-lb walking a
/// three-level graph to the same backend, in the same run; then the time from a change in etcd
/// (graph or health) to the first request that follows it.
/// </summary>
internal static partial class LbBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = BenchCluster.Arg(args, "--seconds", 10);
        var connections = BenchCluster.Arg(args, "--connections", 64);
        var dir = Directory.CreateTempSubdirectory("eru-lb-bench-").FullName;
        var nginx = Tools.Find("nginx", "nginx-light");
        try
        {
            // The backend: nginx answering a small body, one worker.
            var backendPort = Ports.FreeTcp();
            var proxyPort = Ports.FreeTcp();
            // TLS (HTTP/1.1 and HTTP/2 by ALPN) on both proxies, the same certificate and key; plaintext to the backend.
            var certs = Path.Combine(dir, "tls");
            Directory.CreateDirectory(certs);
            TestCertificates.WriteCaAndServer(certs, "eru bench CA", System.Net.IPAddress.Loopback, "bench.test");
            File.Delete(Path.Combine(certs, "ca.crt")); // eru-lb loads every NAME.crt of the directory: the server's alone
            var proxyTlsPort = Ports.FreeTcp();
            WriteNginx(dir, "backend", $$"""
                worker_processes 1;
                events { worker_connections 4096; }
                http { access_log off; server { listen 127.0.0.1:{{backendPort}}; keepalive_requests 100000;
                  location / { return 200 "hello from the backend\n"; } } }
                """);
            WriteNginx(dir, "proxy", $$"""
                worker_processes auto;
                events { worker_connections 4096; }
                http { access_log off;
                  upstream backend { server 127.0.0.1:{{backendPort}}; keepalive 128; }
                  server { listen 127.0.0.1:{{proxyPort}}; listen 127.0.0.1:{{proxyTlsPort}} ssl http2;
                    ssl_certificate {{certs}}/server.crt; ssl_certificate_key {{certs}}/server.key; keepalive_requests 1000000;
                    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
                """);
            await using var backend = ChildProcess.Start(nginx, ["-p", dir, "-c", Path.Combine(dir, "backend.conf"), "-g", "daemon off;"]);
            await using var proxy = ChildProcess.Start(nginx, ["-p", dir, "-c", Path.Combine(dir, "proxy.conf"), "-g", "daemon off;"]);

            await using var etcd = await EtcdServer.StartAsync();
            using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcd.ClientUrl });
            var store = new RegistryStore(conn);
            await using var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(10));
            await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "node-000", HeartbeatAt = DateTimeOffset.UtcNow }, lease.Id);
            var workload = BenchCluster.Workload(0, 1, 1) with
            {
                App = "bench", Entrypoint = "web", Tags = ["v1"], Networks = StringMap.Of(("eru-mv", "127.0.0.1")),
                Ports = [new PublishedPort { Name = "http", Port = backendPort }],
            };
            await store.PutAsync(Kinds.Workloads, workload);
            var healthy = BenchCluster.Status(0, 1, true) with { Addresses = StringMap.Of(("eru-mv", "127.0.0.1")) };
            await store.PutAsync(Kinds.WorkloadStatus, healthy, lease.Id);
            await store.PutAsync(Kinds.LbDomains, Graph(teapot: false));

            var lbPort = Ports.FreeTcp();
            var lbTlsPort = Ports.FreeTcp();
            var lbMetricsPort = Ports.FreeTcp();
            var dll = Path.Combine(AppContext.BaseDirectory, "..", "lb", "eru-lb.dll");
            await using var lb = ChildProcess.Start("dotnet", [dll, "--Registry:Endpoints", etcd.ClientUrl,
                "--Lb:Urls", $"http://127.0.0.1:{lbPort}", "--Http:Urls", $"http://127.0.0.1:{lbMetricsPort}",
                "--Lb:Tls:Urls", $"https://127.0.0.1:{lbTlsPort}", "--Lb:Tls:Certificates", certs,
                "--Lb:AdminUrls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Lb:AdminToken", "bench",
                "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning"]);
            // --baseline-lb DIR: another build of eru-lb (e.g. main's) measured in the same rounds, for A/B of a change.
            // --baseline-env K=V,K=V (repeatable): one more baseline each, with that environment (e.g. DOTNET_GC* knobs),
            // of the --baseline-lb build or else of this one. Named base, base2, base3, ...
            var baseIndex = Array.IndexOf(args, "--baseline-lb");
            var baseDll = baseIndex >= 0 && baseIndex + 1 < args.Length
                ? Path.GetFullPath(Path.Combine(args[baseIndex + 1], "eru-lb.dll"))
                : null;
            var baseEnvs = args.Select((a, i) => (a, i)).Where(x => x.a == "--baseline-env" && x.i + 1 < args.Length)
                .Select(x => args[x.i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2))
                    .ToDictionary(kv => kv[0], kv => kv[1]))
                .ToList();
            if (baseEnvs.Count == 0 && baseDll is not null) baseEnvs.Add([]);
            var baselines = new List<(string Who, int Port, ChildProcess Lb)>();
            await using var stopBaselines = new AsyncDisposables(baselines.Select(b => b.Lb));
            foreach (var env in baseEnvs)
            {
                var port = Ports.FreeTcp();
                baselines.Add((baselines.Count == 0 ? "base" : $"base{baselines.Count + 1}", port, ChildProcess.Start("dotnet",
                    [baseDll ?? Path.GetFullPath(dll), "--Registry:Endpoints", etcd.ClientUrl,
                        "--Lb:Urls", $"http://127.0.0.1:{port}", "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}",
                        "--Lb:AdminUrls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Lb:AdminToken", "bench",
                        "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning"], environment: env)));
                if (env.Count > 0) Console.WriteLine($"{baselines[^1].Who}: {string.Join(' ', env.Select(kv => $"{kv.Key}={kv.Value}"))}");
            }
            using var http = new HttpClient();
            await Until(async () => await Status(http, lbPort) == 200, "eru-lb routing", lb);
            foreach (var b in baselines) await Until(async () => await Status(http, b.Port) == 200, $"{b.Who} eru-lb routing", b.Lb);
            await Until(async () => await Status(http, proxyPort) == 200, "nginx proxying", proxy);

            // A warm-up for each (JIT tiers, connection pools, nginx's upstream keepalive), not measured; then the
            // same load on each, four rounds (the proxies in turns first); the best of each counts, and each round's own ratio is kept.
            var warmup = BenchCluster.Arg(args, "--warmup", 3);
            if (warmup > 0)
                foreach (var (port, servers) in
                    new[] { (backendPort, new[] { backend }), (proxyPort, [proxy, backend]), (lbPort, [lb, backend]) }
                        .Concat(baselines.Select(b => (b.Port, new[] { b.Lb, backend }))))
                    await WrkAsync(port, warmup, connections, servers);
            var runs = new List<(string Who, WrkResult R)>();
            for (var round = 0; round < BenchCluster.Arg(args, "--rounds", 4); round++)
            {
                runs.Add(("direct", await WrkAsync(backendPort, seconds, connections, [backend])));
                // The proxies back to back, in turns which goes first (the machine's load drifts within a round);
                // with a baseline build, the three take turns in each place.
                var proxies = new List<(string Who, int Port, ChildProcess[] Servers)>
                {
                    ("nginx", proxyPort, [proxy, backend]), ("eru", lbPort, [lb, backend]),
                };
                foreach (var b in baselines) proxies.Add((b.Who, b.Port, [b.Lb, backend]));
                for (var k = 0; k < proxies.Count; k++)
                {
                    var (who, port, servers) = proxies[(round + k) % proxies.Count];
                    runs.Add((who, await WrkAsync(port, seconds, connections, servers)));
                }
            }
            foreach (var (who, r) in runs)
                Console.WriteLine($"{who,-7} {r.Rps,10:F0} rps  p50 {r.P50Ms:F3} ms  p99 {r.P99Ms:F3} ms  cpu {r.CpuSeconds:F1}s " +
                    $"({r.FrontCpuUsPerRequest:F1} us/request in the front process)  rss {r.RssMb:F0} MB  errors {r.Errors}");
            var best = runs.GroupBy(r => r.Who).ToDictionary(g => g.Key, g => g.MaxBy(x => x.R.Rps).R);
            Console.WriteLine($"eru-lb memory after the rounds: {Memory(lb.Id)}");
            foreach (var b in baselines) Console.WriteLine($"{b.Who} memory after the rounds: {Memory(b.Lb.Id)}");
            // The garbage collector's share (collections, heap size): prometheus-net's runtime figures.
            var metrics = await http.GetStringAsync($"http://127.0.0.1:{lbMetricsPort}/metrics");
            foreach (var line in metrics.Split('\n').Where(l => l.StartsWith("dotnet_collection_count_total", StringComparison.Ordinal)
                || l.StartsWith("dotnet_total_memory_bytes", StringComparison.Ordinal)))
                Console.WriteLine($"eru-lb {line}");

            // TLS terminated by each proxy, plaintext to the backend: HTTP/1.1 with wrk over https (a connection each, as
            // above), then HTTP/2 with h2load (few connections, many streams on each). Shorter rounds, taking turns.
            var tlsSeconds = BenchCluster.Arg(args, "--tls-seconds", 5);
            var tlsProxies = new (string Who, int Port, ChildProcess[] Servers)[]
            {
                ("nginx", proxyTlsPort, [proxy, backend]), ("eru", lbTlsPort, [lb, backend]),
            };
            foreach (var (_, port, servers) in tlsProxies)
            {
                await WrkAsync(port, 2, connections, servers, tls: true);
                await H2LoadAsync(dir, port, 2, args, servers);
            }
            var tlsRuns = new List<(string Who, WrkResult R)>();
            var h2Runs = new List<(string Who, WrkResult R)>();
            for (var round = 0; round < BenchCluster.Arg(args, "--tls-rounds", 2); round++)
                for (var k = 0; k < tlsProxies.Length; k++)
                {
                    var (who, port, servers) = tlsProxies[(round + k) % tlsProxies.Length];
                    tlsRuns.Add((who, await WrkAsync(port, tlsSeconds, connections, servers, tls: true)));
                    h2Runs.Add((who, await H2LoadAsync(dir, port, tlsSeconds, args, servers)));
                }
            foreach (var (what, list) in new[] { ("https", tlsRuns), ("h2", h2Runs) })
                foreach (var (who, r) in list)
                    Console.WriteLine($"{what,-5} {who,-7} {r.Rps,10:F0} rps  p50 {r.P50Ms:F3} ms  p99 {r.P99Ms:F3} ms  " +
                        $"({r.FrontCpuUsPerRequest:F1} us/request in the front process)  rss {r.RssMb:F0} MB  errors {r.Errors}");
            var bestTls = tlsRuns.GroupBy(r => r.Who).ToDictionary(g => g.Key, g => g.MaxBy(x => x.R.Rps).R);
            var bestH2 = h2Runs.GroupBy(r => r.Who).ToDictionary(g => g.Key, g => g.MaxBy(x => x.R.Rps).R);

            // Propagation: a change in etcd → the first request that shows it.
            var graphMs = new List<double>();
            var healthMs = new List<double>();
            for (var k = 0; k < 40; k++)
            {
                var teapot = k % 2 == 0;
                await store.PutAsync(Kinds.LbDomains, Graph(teapot));
                var t0 = Stopwatch.GetTimestamp();
                await Until(async () => await Status(http, lbPort) == (teapot ? 418 : 200), "graph change", lb);
                graphMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);

                await store.PutAsync(Kinds.WorkloadStatus, healthy with { Healthy = teapot }, lease.Id);
                if (teapot) continue;
                t0 = Stopwatch.GetTimestamp();
                await Until(async () => await Status(http, lbPort) == 503, "health change", lb);
                healthMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                await store.PutAsync(Kinds.WorkloadStatus, healthy, lease.Id);
                await Until(async () => await Status(http, lbPort) == 200, "healthy again", lb);
            }

            var rolling = await RollingReplaceAsync(dir, nginx, store, lease.Id, workload, healthy, lbPort, connections);

            var ratio = best["eru"].Rps / best["nginx"].Rps;
            // Each round's own ratio (its two proxies ran back to back): the middle one is steadier than best against best.
            var roundRatios = runs.Where(r => r.Who == "eru")
                .Zip(runs.Where(r => r.Who == "nginx"), (e, n) => Math.Round(e.R.Rps / n.R.Rps, 3)).ToList();
            var result = new Dictionary<string, object>
            {
                ["seconds_per_run"] = seconds,
                ["connections"] = connections,
                ["direct_rps"] = Math.Round(best["direct"].Rps),
                ["nginx_rps"] = Math.Round(best["nginx"].Rps),
                ["eru_rps"] = Math.Round(best["eru"].Rps),
                ["rps_ratio_vs_nginx"] = Math.Round(ratio, 3),
                ["rps_ratio_per_round"] = roundRatios,
                ["rps_ratio_median_round"] = Stats.Round(Stats.Percentile(roundRatios, 50)),
                ["nginx_p50_ms"] = best["nginx"].P50Ms, ["nginx_p99_ms"] = best["nginx"].P99Ms,
                ["eru_p50_ms"] = best["eru"].P50Ms, ["eru_p99_ms"] = best["eru"].P99Ms,
                ["nginx_cpu_s"] = Math.Round(best["nginx"].CpuSeconds, 1), ["eru_cpu_s"] = Math.Round(best["eru"].CpuSeconds, 1),
                // CPU per request of the proxy process alone: steadier than requests per second on a shared machine.
                ["nginx_cpu_us_per_request"] = runs.Where(r => r.Who == "nginx").Min(r => r.R.FrontCpuUsPerRequest),
                ["eru_cpu_us_per_request"] = runs.Where(r => r.Who == "eru").Min(r => r.R.FrontCpuUsPerRequest),
                ["nginx_rss_mb"] = Math.Round(best["nginx"].RssMb), ["eru_rss_mb"] = Math.Round(best["eru"].RssMb),
                ["eru_errors"] = best["eru"].Errors,
                ["tls_nginx_rps"] = Math.Round(bestTls["nginx"].Rps), ["tls_eru_rps"] = Math.Round(bestTls["eru"].Rps),
                ["tls_rps_ratio_vs_nginx"] = Math.Round(bestTls["eru"].Rps / bestTls["nginx"].Rps, 3),
                ["tls_nginx_p50_ms"] = bestTls["nginx"].P50Ms, ["tls_nginx_p99_ms"] = bestTls["nginx"].P99Ms,
                ["tls_eru_p50_ms"] = bestTls["eru"].P50Ms, ["tls_eru_p99_ms"] = bestTls["eru"].P99Ms,
                ["tls_p99_ratio_vs_nginx"] = Math.Round(bestTls["eru"].P99Ms / bestTls["nginx"].P99Ms, 3),
                ["tls_eru_errors"] = bestTls["eru"].Errors,
                ["h2_nginx_rps"] = Math.Round(bestH2["nginx"].Rps), ["h2_eru_rps"] = Math.Round(bestH2["eru"].Rps),
                ["h2_rps_ratio_vs_nginx"] = Math.Round(bestH2["eru"].Rps / bestH2["nginx"].Rps, 3),
                ["h2_nginx_p50_ms"] = bestH2["nginx"].P50Ms, ["h2_nginx_p99_ms"] = bestH2["nginx"].P99Ms,
                ["h2_eru_p50_ms"] = bestH2["eru"].P50Ms, ["h2_eru_p99_ms"] = bestH2["eru"].P99Ms,
                ["h2_p99_ratio_vs_nginx"] = Math.Round(bestH2["eru"].P99Ms / bestH2["nginx"].P99Ms, 3),
                ["h2_eru_errors"] = bestH2["eru"].Errors,
                ["graph_change_p50_ms"] = Stats.Round(Stats.Percentile(graphMs, 50)),
                ["graph_change_p99_ms"] = Stats.Round(Stats.Percentile(graphMs, 99)),
                ["health_change_p50_ms"] = Stats.Round(Stats.Percentile(healthMs, 50)),
                ["health_change_p99_ms"] = Stats.Round(Stats.Percentile(healthMs, 99)),
                ["rolling_replace_requests"] = rolling.Requests,
                ["rolling_replace_failed"] = rolling.Failed,
                ["p99_ratio_vs_nginx"] = Math.Round(best["eru"].P99Ms / best["nginx"].P99Ms, 3),
                ["rss_ratio_vs_nginx"] = Math.Round(best["eru"].RssMb / best["nginx"].RssMb, 3),
                ["targets_met"] = ratio >= 1.0 && best["eru"].P99Ms <= 0.8 * best["nginx"].P99Ms
                    && best["eru"].RssMb <= 2 * best["nginx"].RssMb
                    && Stats.Percentile(graphMs, 99) <= 100 && Stats.Percentile(healthMs, 99) <= 100 && rolling.Failed == 0,
            };
            foreach (var (who, _, _) in baselines)
            {
                var key = who == "base" ? "baseline" : who.Replace("base", "baseline", StringComparison.Ordinal);
                result[$"{key}_eru_rps"] = Math.Round(best[who].Rps);
                result[$"{key}_eru_p99_ms"] = best[who].P99Ms;
                result[$"{key}_eru_rss_mb"] = Math.Round(best[who].RssMb);
                result[$"{key}_eru_cpu_us_per_request"] = runs.Where(r => r.Who == who).Min(r => r.R.FrontCpuUsPerRequest);
                result[$"rps_ratio_vs_{key}_per_round"] = runs.Where(r => r.Who == "eru")
                    .Zip(runs.Where(r => r.Who == who), (e, b) => Math.Round(e.R.Rps / b.R.Rps, 3)).ToList();
            }
            Console.WriteLine("RESULT lb " + JsonSerializer.Serialize(result));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Rolling replace under constant load: the backend gets two peers, then each of the three is replaced
    /// by a new one the way a deploy does it (new workload live, old one marked unhealthy by its agent,
    /// a moment to drain, record deleted, process stopped) while wrk keeps sending. Every failed request counts.
    /// </summary>
    private static async Task<(long Requests, long Failed)> RollingReplaceAsync(string dir, string nginx, RegistryStore store, long lease,
        Workload first, WorkloadStatus firstStatus, int lbPort, int connections)
    {
        var running = new List<(Workload W, WorkloadStatus S, ChildProcess? P)> { (first, firstStatus, null) };
        var spawned = new List<ChildProcess>();
        async Task<(Workload, WorkloadStatus, ChildProcess)> StartBackend(int n)
        {
            var port = Ports.FreeTcp();
            WriteNginx(dir, $"rolling{n}", $$"""
                worker_processes 1;
                events { worker_connections 4096; }
                http { access_log off; server { listen 127.0.0.1:{{port}}; keepalive_requests 100000;
                  location / { return 200 "hello from backend {{n}}\n"; } } }
                """);
            var p = ChildProcess.Start(nginx, ["-p", dir, "-c", Path.Combine(dir, $"rolling{n}.conf"), "-g", "daemon off;"]);
            spawned.Add(p);
            var w = BenchCluster.Workload(1000 + n, 1, 1) with
            {
                App = "bench", Entrypoint = "web", Tags = ["v1"], Networks = StringMap.Of(("eru-mv", "127.0.0.1")),
                Ports = [new PublishedPort { Name = "http", Port = port }],
            };
            var st = BenchCluster.Status(1000 + n, 1, true) with { Addresses = StringMap.Of(("eru-mv", "127.0.0.1")) };
            using var http = new HttpClient();
            await Until(async () =>
            {
                try { return (await http.GetAsync($"http://127.0.0.1:{port}/")).IsSuccessStatusCode; }
                catch (HttpRequestException) { return false; }
            }, $"backend {n} up", p);
            await store.PutAsync(Kinds.Workloads, w);
            await store.PutAsync(Kinds.WorkloadStatus, st, lease);
            return (w, st, p);
        }
        try
        {
            for (var n = 0; n < 2; n++) running.Add(await StartBackend(n));
            await Task.Delay(500);
            var output = new System.Text.StringBuilder();
            var wrkSeconds = 12;
            await using var wrk = ChildProcess.Start(Tools.Find("wrk", "wrk"),
                ["-t", "2", "-c", connections.ToString(CultureInfo.InvariantCulture), "-d", $"{wrkSeconds}s",
                    "-H", "Host: bench.test", $"http://127.0.0.1:{lbPort}/"],
                line => { lock (output) output.AppendLine(line); });
            await Task.Delay(1000);
            for (var n = 2; n < 5; n++)
            {
                var next = await StartBackend(n);
                running.Add(next);
                await Task.Delay(300); // the new one takes traffic
                var old = running[0];
                running.RemoveAt(0);
                await store.PutAsync(Kinds.WorkloadStatus, old.S with { Healthy = false, Reason = "replaced" }, lease); // no new requests
                await Task.Delay(500); // in-flight ones finish
                await store.DeleteAsync(Kinds.WorkloadStatus, old.W.Id);
                await store.DeleteAsync(Kinds.Workloads, old.W.Id);
                if (old.P is not null) await old.P.StopAsync(); // the first one's process stays: it is the earlier runs' backend
            }
            await Until(() => Task.FromResult(wrk.HasExited), "rolling wrk done", wrk, TimeSpan.FromSeconds(wrkSeconds + 30));
            await wrk.WaitForExitAsync();
            var text = output.ToString();
            var requests = RequestsLine().Match(text) is { Success: true } m
                ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
                : 0;
            long failed = 0;
            foreach (Match e in SocketErrors().Matches(text))
                for (var g = 1; g <= 4; g++) failed += long.Parse(e.Groups[g].Value, CultureInfo.InvariantCulture);
            failed += Non2xx().Match(text) is { Success: true } x ? long.Parse(x.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            Console.WriteLine($"rolling replace of 3 backends under load: {requests} requests, {failed} failed");
            return (requests, failed);
        }
        finally
        {
            foreach (var p in spawned) await p.DisposeAsync();
        }
    }

    /// <summary>host → path → header → percent → tag-selected backend (or a 418 when <paramref name="teapot"/>).</summary>
    private static LbDomain Graph(bool teapot) => new()
    {
        Name = "bench.test",
        Init = "path",
        Nodes = new()
        {
            ["path"] = new LbNode { Type = "path", Match = "prefix", Value = "/", Succ = "canary", Fail = "nope" },
            ["canary"] = new LbNode { Type = "header", Name = "X-Canary", Match = "exact", Value = "1", Succ = "v2", Fail = "split" },
            ["split"] = new LbNode { Type = "percent", Key = "cookie:uid", Percent = 0, Succ = "v2", Fail = teapot ? "teapot" : "v1" },
            ["v1"] = new LbNode
            {
                Type = "backend", Select = new LbSelector { App = "bench", Entrypoint = "web", Port = "http", Tags = ["v1"] },
            },
            ["v2"] = new LbNode
            {
                Type = "backend", Select = new LbSelector { App = "bench", Entrypoint = "web", Port = "http", Tags = ["v2"] },
            },
            ["teapot"] = new LbNode { Type = "respond", Status = 418 },
            ["nope"] = new LbNode { Type = "respond", Status = 404 },
        },
    };

    private static void WriteNginx(string dir, string name, string config)
    {
        Directory.CreateDirectory(Path.Combine(dir, "logs"));
        File.WriteAllText(Path.Combine(dir, name + ".conf"), $"pid {dir}/{name}.pid;\nerror_log {dir}/{name}.err warn;\n{config}\n");
    }

    private static async Task<int> Status(HttpClient http, int port)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/");
        req.Headers.Host = "bench.test";
        try
        {
            using var resp = await http.SendAsync(req);
            return (int)resp.StatusCode;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    /// <summary>CpuSeconds and RssMb: all <c>servers</c>; FrontCpuUsPerRequest: the first one (the proxy) alone, per request.</summary>
    private sealed record WrkResult(
        double Rps, double P50Ms, double P99Ms, long Errors, double CpuSeconds, double RssMb, double FrontCpuUsPerRequest);

    private static async Task<WrkResult> WrkAsync(int port, int seconds, int connections, ChildProcess[] servers, bool tls = false)
    {
        var pids = servers.SelectMany(s => Tree(s.Id)).ToList();
        var front = Tree(servers[0].Id).ToList();
        var cpuBefore = pids.Sum(CpuTicks);
        var frontBefore = front.Sum(CpuTicks);
        var output = new System.Text.StringBuilder();
        await using (var wrk = ChildProcess.Start(Tools.Find("wrk", "wrk"),
            ["-t", "2", "-c", connections.ToString(), "-d", $"{seconds}s", "--latency",
                "-H", "Host: bench.test", $"{(tls ? "https" : "http")}://127.0.0.1:{port}/"],
            line => { lock (output) output.AppendLine(line); }))
        {
            await Until(() => Task.FromResult(wrk.HasExited), "wrk done", wrk, TimeSpan.FromSeconds(seconds + 30));
            await wrk.WaitForExitAsync(); // its last lines (the totals) may still be on their way on a busy machine
        }
        var cpu = (pids.Sum(CpuTicks) - cpuBefore) / 100.0;
        var frontCpu = (front.Sum(CpuTicks) - frontBefore) / 100.0;
        var rss = pids.Sum(ProcessStats.RssKb) / 1024.0;
        var text = output.ToString();
        var rps = double.Parse(RpsLine().Match(text).Groups[1].Value, CultureInfo.InvariantCulture);
        var errors = ErrorsLine().Match(text) is { Success: true } e ? long.Parse(e.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        errors += Non2xx().Match(text) is { Success: true } n ? long.Parse(n.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        var requests = RequestsLine().Match(text) is { Success: true } m
            ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
            : 0;
        return new WrkResult(rps, Percent(text, "50%"), Percent(text, "99%"), errors, cpu, rss,
            requests > 0 ? Math.Round(frontCpu * 1e6 / requests, 1) : 0);
    }

    /// <summary>
    /// h2load over TLS (ALPN h2): --h2-connections (4) connections of --h2-streams (16) concurrent streams each, for
    /// <paramref name="seconds"/>; p50 and p99 from its per-request log (h2load prints only mean and deviation).
    /// </summary>
    private static async Task<WrkResult> H2LoadAsync(string dir, int port, int seconds, string[] args, ChildProcess[] servers)
    {
        var pids = servers.SelectMany(s => Tree(s.Id)).ToList();
        var front = Tree(servers[0].Id).ToList();
        var cpuBefore = pids.Sum(CpuTicks);
        var frontBefore = front.Sum(CpuTicks);
        var log = Path.Combine(dir, "h2load.log");
        File.Delete(log); // h2load appends
        var output = new System.Text.StringBuilder();
        await using (var h2load = ChildProcess.Start(Tools.Find("h2load", "nghttp2-client"),
            ["-t", "2", "-c", BenchCluster.Arg(args, "--h2-connections", 4).ToString(CultureInfo.InvariantCulture),
                "-m", BenchCluster.Arg(args, "--h2-streams", 16).ToString(CultureInfo.InvariantCulture),
                "-D", seconds.ToString(CultureInfo.InvariantCulture), "--log-file", log,
                "-H", ":authority: bench.test", $"https://127.0.0.1:{port}/"],
            line => { lock (output) output.AppendLine(line); }))
        {
            await Until(() => Task.FromResult(h2load.HasExited), "wrk done", h2load, TimeSpan.FromSeconds(seconds + 30));
            await h2load.WaitForExitAsync();
        }
        var cpu = (pids.Sum(CpuTicks) - cpuBefore) / 100.0;
        var frontCpu = (front.Sum(CpuTicks) - frontBefore) / 100.0;
        var rss = pids.Sum(ProcessStats.RssKb) / 1024.0;
        var text = output.ToString();
        if (H2Finished().Match(text) is not { Success: true } f || H2Requests().Match(text) is not { Success: true } n)
            throw new InvalidOperationException($"h2load: no totals in its output:\n{text}");
        // Columns: start (µs since the epoch), status, µs to the end of the response.
        var micros = new List<double>();
        foreach (var line in File.ReadLines(log))
        {
            // Answered ones only: the others (status -1, 4xx, 5xx) are in h2load's failed and errored counts.
            var cols = line.Split('\t');
            if (cols.Length >= 3 && cols[1].StartsWith('2')) micros.Add(double.Parse(cols[2], CultureInfo.InvariantCulture));
        }
        File.Delete(log);
        var done = long.Parse(n.Groups[1].Value, CultureInfo.InvariantCulture);
        // failed, errored, timeout
        var errors = Enumerable.Range(2, 3).Sum(g => long.Parse(n.Groups[g].Value, CultureInfo.InvariantCulture));
        return new WrkResult(double.Parse(f.Groups[1].Value, CultureInfo.InvariantCulture),
            Math.Round(Stats.Percentile(micros, 50) / 1000, 3), Math.Round(Stats.Percentile(micros, 99) / 1000, 3), errors, cpu, rss,
            done > 0 ? Math.Round(frontCpu * 1e6 / done, 1) : 0);
    }

    /// <summary>Disposes processes started along the way (the list may grow after this is made).</summary>
    private sealed class AsyncDisposables(IEnumerable<IAsyncDisposable> items) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            foreach (var item in items) await item.DisposeAsync();
        }
    }

    private static double Percent(string wrk, string which)
    {
        var m = Regex.Match(wrk, $@"^\s*{Regex.Escape(which)}\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        var v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return Math.Round(m.Groups[2].Value switch { "us" => v / 1000, "s" => v * 1000, _ => v }, 3);
    }

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")] private static partial Regex RpsLine();
    [GeneratedRegex(@"Socket errors: connect (\d+)")] private static partial Regex ErrorsLine();
    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")] private static partial Regex Non2xx();
    [GeneratedRegex(@"(\d+) requests in")] private static partial Regex RequestsLine();
    [GeneratedRegex(@"finished in [\d.]+\w+, ([\d.]+) req/s")] private static partial Regex H2Finished();
    [GeneratedRegex(@"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")]
    private static partial Regex H2Requests();
    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")] private static partial Regex SocketErrors();

    private static IEnumerable<int> Tree(int pid)
    {
        yield return pid;
        var children = $"/proc/{pid}/task/{pid}/children";
        if (!File.Exists(children)) yield break;
        foreach (var c in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            foreach (var d in Tree(int.Parse(c, CultureInfo.InvariantCulture))) yield return d;
    }

    private static long CpuTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11], CultureInfo.InvariantCulture)
                + long.Parse(fields[12], CultureInfo.InvariantCulture); // utime + stime
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static readonly string[] MemoryFields = ["Rss", "Pss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"];

    /// <summary>Where a process's resident memory is: anonymous (heaps, stacks) vs file-backed (code, mapped assemblies).</summary>
    private static string Memory(int pid)
    {
        try
        {
            var fields = File.ReadLines($"/proc/{pid}/smaps_rollup").Select(l => l.Split(':', 2)).Where(kv => kv.Length == 2)
                .ToDictionary(kv => kv[0], kv => kv[1].Trim());
            return string.Join(", ", MemoryFields.Where(fields.ContainsKey).Select(k => $"{k} {fields[k]}"));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static async Task Until(Func<Task<bool>> condition, string what, ChildProcess process, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (process.HasExited && what != "wrk done")
                throw new InvalidOperationException($"{what}: process exited:\n{process.OutputTail()}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what}: not in time:\n{process.OutputTail()}");
            await Task.Delay(5);
        }
    }
}
