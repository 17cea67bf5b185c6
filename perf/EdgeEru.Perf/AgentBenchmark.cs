using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeEru.Perf;

/// <summary>
/// agent: eru-agent on one simulated host with N containers (HTTP-checked every second). Reports etcd
/// writes per minute in steady state (etcd's revision and the agent's own counter), the time from a
/// container's death to its status change (next to the anchor: the same death seen as Docker's own
/// event), log throughput through a TCP sink (next to the anchor: <c>docker logs</c> reading the same
/// lines), and the agent's CPU and memory.
/// </summary>
internal static class AgentBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var containers = BenchCluster.Arg(args, "--containers", 200);
        var steadySeconds = BenchCluster.Arg(args, "--steady-seconds", 60);
        var deaths = BenchCluster.Arg(args, "--deaths", 20);
        var logLines = BenchCluster.Arg(args, "--log-lines", 100_000);
        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("perf agent: simulated Docker hosts need root");
            return 2;
        }

        await using var etcd = await EtcdServer.StartAsync();
        await using var rig = await DockerRig.StartAsync(1, 'p');
        var host = rig.Hosts[0];
        using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcd.ClientUrl });
        var store = new RegistryStore(conn);
        await store.PutAsync(Kinds.Pods, new Pod { Name = "bench" });
        await store.PutAsync(Kinds.Nodes,
            host.AsNode("bench", cpuCores: Environment.ProcessorCount, memoryBytes: 64L << 30) with { Name = "h1" });

        // The TCP sink: counts lines and notes when each arrives.
        using var sink = new TcpListener(IPAddress.Loopback, 0);
        sink.Start();
        var sinkCounter = new SinkCounter();
        _ = Task.Run(() => sinkCounter.RunAsync(sink));

        var httpPort = Ports.FreeTcp();
        var dll = Path.Combine(AppContext.BaseDirectory, "..", "agent", "eru-agent.dll");
        await using var agent = ChildProcess.Start("dotnet", [dll, "--Registry:Endpoints", etcd.ClientUrl, "--Agent:Node", "h1",
            "--Agent:Docker", host.Endpoint,
            "--Http:Urls", $"http://127.0.0.1:{httpPort}", "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning",
            "--Logs:Sinks:0:Type", "tcp", "--Logs:Sinks:0:Address", $"127.0.0.1:{((IPEndPoint)sink.LocalEndpoint).Port}",
            "--Logs:Sinks:0:Name", "bench", "--Logs:Sinks:0:Buffer", "1000000"]);
        await Until(() => store.GetAsync(Kinds.NodeStatus, "h1").Result is not null, TimeSpan.FromSeconds(60),
            "the agent's heartbeat", agent);

        var deployer = new Deployer(store, e => new DockerEngine(e), NullLogger<Deployer>.Instance);
        var sw = Stopwatch.StartNew();
        var deployed = await deployer.DeployAsync(new DeploySpec
        {
            App = "bench", Entrypoint = "web", Image = DockerRig.Image, Pod = "bench", Count = containers, Nodes = ["h1"],
            Command = ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 80 -h /www"],
            Ports = [new PublishedPort { Name = "http", Port = 80 }],
            Healthcheck = new HealthCheckSpec
            {
                Http = new HttpCheck { Port = "http", Path = "/" }, IntervalMs = 1000, TimeoutMs = 1000, UnhealthyAfter = 1,
            },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 4L << 20, MemoryLimit = 16L << 20,
        });
        if (!deployed.Ok) throw new InvalidOperationException(deployed.Error ?? deployed.Instances.First(i => i.Error is not null).Error);
        var ids = deployed.Instances.Select(i => i.WorkloadId!).ToList();
        Console.WriteLine($"{containers} containers created in {sw.Elapsed.TotalSeconds:F0} s");

        await using var watcher = new RegistryWatcher(conn, NullLogger<RegistryWatcher>.Instance);
        watcher.Start();
        await watcher.Ready;
        await Until(() => ids.All(id => watcher.Current.Workloads.TryGetValue(id, out var w) && w.Status is { Healthy: true }),
            TimeSpan.FromMinutes(5), "every container healthy", agent);
        Console.WriteLine($"all healthy {sw.Elapsed.TotalSeconds:F0} s after the deploy started");

        // Steady state: nothing changes; what does the agent cost etcd and the host?
        await Task.Delay(TimeSpan.FromSeconds(5)); // let the last writes settle
        using var http = new HttpClient();
        var rev0 = (await store.ListAsync(Kinds.Pods)).Revision;
        var writes0 = await AgentWritesAsync(http, httpPort);
        var cpu0 = CpuSeconds(agent.Id);
        var t0 = Stopwatch.GetTimestamp();
        await Task.Delay(TimeSpan.FromSeconds(steadySeconds));
        var minutes = Stopwatch.GetElapsedTime(t0).TotalMinutes;
        var rev1 = (await store.ListAsync(Kinds.Pods)).Revision;
        var writes1 = await AgentWritesAsync(http, httpPort);
        var cpuPercent = (CpuSeconds(agent.Id) - cpu0) / (minutes * 60) * 100;
        var rssMb = RssMb(agent.Id);
        var privateMb = PrivateMb(agent.Id);
        Console.WriteLine($"steady: {(rev1 - rev0) / minutes:F1} etcd revisions/min, " +
            $"agent writes {(writes1 - writes0) / minutes:F1}/min, agent cpu {cpuPercent:F1}% rss {rssMb:F0} MB " +
            $"({privateMb:F0} MB not file-backed)");

        // Death → status change, next to Docker's own die event (the floor any watcher of Docker has).
        using var engine = new DockerEngine(new DockerEndpoint { Address = host.Endpoint });
        var dieSeen = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        using var stopEvents = new CancellationTokenSource();
        var events = Task.Run(async () =>
        {
            try
            {
                await engine.FollowEventsAsync(e =>
                {
                    if (e.Action == "die") dieSeen.TryAdd(e.Id, Stopwatch.GetTimestamp());
                }, stopEvents.Token);
            }
            catch (OperationCanceledException)
            {
            }
        });
        var statusSeen = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        using var sub = watcher.Subscribe(s =>
        {
            var now = Stopwatch.GetTimestamp();
            foreach (var id in ids)
                if (!statusSeen.ContainsKey(id) && s.Workloads.TryGetValue(id, out var w) && w.Status is { Running: false })
                    statusSeen.TryAdd(id, now);
        });
        await Task.Delay(500);
        var agentMs = new List<double>();
        var dockerMs = new List<double>();
        foreach (var id in ids.Take(deaths))
        {
            var start = Stopwatch.GetTimestamp();
            await host.DockerAsync(["kill", id]);
            await Until(() => statusSeen.ContainsKey(id) && dieSeen.ContainsKey(id), TimeSpan.FromSeconds(30),
                "status running=false", agent);
            agentMs.Add(Stopwatch.GetElapsedTime(start, statusSeen[id]).TotalMilliseconds);
            dockerMs.Add(Stopwatch.GetElapsedTime(start, dieSeen[id]).TotalMilliseconds);
        }
        await stopEvents.CancelAsync();
        await events;
        Console.WriteLine($"death → status: p50 {Stats.Percentile(agentMs, 50):F0} ms p99 {Stats.Percentile(agentMs, 99):F0} ms " +
            $"(Docker's die event: p50 {Stats.Percentile(dockerMs, 50):F0} ms)");

        // Logs: one container prepares its lines in a file, then writes them out in one burst (cat), as fast as
        // Docker takes them; the agent ships them to the TCP sink.
        sinkCounter.Reset();
        var spam = await deployer.DeployAsync(new DeploySpec
        {
            App = "spam", Entrypoint = "out", Image = DockerRig.Image, Pod = "bench", Count = 1, Nodes = ["h1"],
            Command = ["sh", "-c", $"i=0; while [ $i -lt {logLines} ]; do echo \"log line number $i of the benchmark\"; i=$((i+1)); done" +
                " > /tmp/lines; cat /tmp/lines"],
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 4L << 20, MemoryLimit = 64L << 20,
        });
        var spamId = spam.Instances[0].WorkloadId!;
        await Until(() => sinkCounter.Lines >= logLines, TimeSpan.FromMinutes(5), $"{logLines} lines at the TCP sink", agent);
        var sinkSeconds = sinkCounter.Span.TotalSeconds;
        var anchor = Stopwatch.StartNew();
        var dockerLogs = await host.DockerAsync(["logs", spamId]);
        var anchorSeconds = anchor.Elapsed.TotalSeconds;
        var anchorLines = dockerLogs.Count(c => c == '\n');
        var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{httpPort}/metrics"));
        var dropped = metrics.Split('\n')
            .FirstOrDefault(l => l.StartsWith("eru_agent_log_lines_total{sink=\"bench\",outcome=\"dropped\"}", StringComparison.Ordinal))
            ?.Split(' ')[^1] ?? "?";
        Console.WriteLine($"logs: {logLines / sinkSeconds:F0} lines/s at the sink; " +
            $"docker logs reads {anchorLines / anchorSeconds:F0} lines/s; dropped {dropped}");

        sink.Stop();
        var deathP50 = Stats.Percentile(agentMs, 50);
        var dieP50 = Stats.Percentile(dockerMs, 50);
        var result = new Dictionary<string, object>
        {
            ["containers"] = containers,
            ["steady_seconds"] = steadySeconds,
            ["etcd_revisions_per_min"] = Math.Round((rev1 - rev0) / minutes, 1),
            ["agent_etcd_writes_per_min"] = Math.Round((writes1 - writes0) / minutes, 1),
            ["agent_cpu_percent"] = Math.Round(cpuPercent, 1),
            ["agent_rss_mb"] = Math.Round(rssMb),
            ["agent_rss_anon_shmem_mb"] = Math.Round(privateMb),
            ["death_to_status_p50_ms"] = Stats.Round(Stats.Percentile(agentMs, 50), 1),
            ["death_to_status_p99_ms"] = Stats.Round(Stats.Percentile(agentMs, 99), 1),
            ["anchor_docker_die_event_p50_ms"] = Stats.Round(Stats.Percentile(dockerMs, 50), 1),
            ["anchor_docker_die_event_p99_ms"] = Stats.Round(Stats.Percentile(dockerMs, 99), 1),
            ["log_lines"] = logLines,
            ["log_lines_per_s_at_tcp_sink"] = Math.Round(logLines / sinkSeconds),
            ["anchor_docker_logs_lines_per_s"] = Math.Round(anchorLines / anchorSeconds),
            ["log_throughput_ratio_vs_docker_logs"] = Math.Round(logLines / sinkSeconds / (anchorLines / anchorSeconds), 3),
            ["log_lines_dropped"] = dropped,
            ["death_to_status_p50_ratio_vs_die_event"] = Math.Round(deathP50 / dieP50, 2),
            // As in Report/Figures.cs: status within 1.2× Docker's own die event, 80 MB with 200 containers, no line lost.
            ["targets_met"] = deathP50 <= 1.2 * dieP50 && rssMb <= 80 && dropped == "0",
        };
        Console.WriteLine("RESULT agent " + JsonSerializer.Serialize(result));
        return 0;
    }

    private static async Task<double> AgentWritesAsync(HttpClient http, int port) =>
        (await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"))).Split('\n')
            .Where(l => l.StartsWith("eru_agent_etcd_writes_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l.Split(' ')[^1], CultureInfo.InvariantCulture));

    /// <summary>User plus system CPU of a process (its /proc stat, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static double RssMb(int pid) => ProcessStats.RssKb(pid) / 1024.0;

    /// <summary>
    /// The part of the RSS that is the agent's own (heap, stacks, JIT'd code): RssAnon + RssShmem, without the pages of
    /// mapped files (the runtime's and framework's images, shared with every .NET process on the host).
    /// </summary>
    private static double PrivateMb(int pid)
    {
        var status = File.ReadAllLines($"/proc/{pid}/status");
        double Kb(string key) => long.Parse(status.First(l => l.StartsWith(key, StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return (Kb("RssAnon:") + Kb("RssShmem:")) / 1024.0;
    }

    private static async Task Until(Func<bool> condition, TimeSpan timeout, string what, ChildProcess agent)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (agent.HasExited) throw new InvalidOperationException($"eru-agent exited:\n{agent.OutputTail()}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waiting for {what}:\n{agent.OutputTail()}");
            await Task.Delay(5);
        }
    }

    /// <summary>A TCP sink that counts lines and the time between the first and the last.</summary>
    private sealed class SinkCounter
    {
        private long _lines;
        private long _first;
        private long _last;

        public long Lines => Interlocked.Read(ref _lines);
        public TimeSpan Span => Stopwatch.GetElapsedTime(Interlocked.Read(ref _first), Interlocked.Read(ref _last));

        public void Reset()
        {
            Interlocked.Exchange(ref _lines, 0);
            Interlocked.Exchange(ref _first, 0);
            Interlocked.Exchange(ref _last, 0);
        }

        public async Task RunAsync(TcpListener listener)
        {
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync();
                    _ = Task.Run(async () =>
                    {
                        using var c = client;
                        var buffer = new byte[64 * 1024];
                        var stream = c.GetStream();
                        int n;
                        while ((n = await stream.ReadAsync(buffer)) > 0)
                        {
                            var count = buffer.AsSpan(0, n).Count((byte)'\n');
                            if (count == 0) continue;
                            var now = Stopwatch.GetTimestamp();
                            Interlocked.CompareExchange(ref _first, now, 0);
                            Interlocked.Add(ref _lines, count);
                            Interlocked.Exchange(ref _last, now);
                        }
                    });
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Stopped.
            }
        }
    }
}
