using System.Diagnostics;
using System.Text.Json;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Perf;

/// <summary>
/// deploy: N containers (50) across 4 simulated hosts end to end, from the deploy request until every
/// container is started and recorded: the Deployer as eru-core runs it (a real etcd and a registry watcher,
/// Docker.DotNet to each host's dockerd).
/// Anchor in the same run: a loop of <c>docker run -d</c> (the CLI, round robin over the hosts' sockets)
/// creating and starting the same containers (image, command, memory limit, network, labels), and, for
/// reference, the same loop run as one loop per host in parallel. Rounds (3) alternate which goes first
/// and the medians are reported; everything is removed between runs, and the rig and etcd are torn down
/// even on failure.
/// </summary>
internal static class DeployBenchmark
{
    private const long MiB = 1L << 20;
    private static readonly string[] Command = ["sleep", "1000000"];

    public static async Task<int> RunAsync(string[] args)
    {
        var containers = BenchCluster.Arg(args, "--containers", 50);
        var rounds = BenchCluster.Arg(args, "--rounds", 3);
        const int hostCount = 4;
        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("perf deploy: simulated Docker hosts need root");
            return 2;
        }
        using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));

        Console.Error.WriteLine($"starting etcd and {hostCount} simulated hosts");
        await using var etcd = await EtcdServer.StartAsync();
        await using var rig = await DockerRig.StartAsync(hostCount, 'p');
        using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcd.ClientUrl });
        var store = new RegistryStore(conn);
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        await store.PutAsync(Kinds.Pods, new Pod { Name = "bench" });
        foreach (var host in rig.Hosts)
        {
            var node = host.AsNode("bench", cpuCores: Environment.ProcessorCount, memoryBytes: 64L << 30);
            await store.PutAsync(Kinds.Nodes, node);
            await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = node.Name, HeartbeatAt = DateTimeOffset.UtcNow }, lease.Id);
        }
        // As eru-core runs it: with a registry watcher, so a node's workloads come from the snapshot.
        await using var watcher = new RegistryWatcher(conn, logs.CreateLogger<RegistryWatcher>());
        watcher.Start();
        await watcher.Ready;
        var deployer = new Deployer(store, e => new DockerEngine(e), logs.CreateLogger<Deployer>(), watcher);
        var spec = new DeploySpec
        {
            App = "bench", Entrypoint = "web", Image = DockerRig.Image, Pod = "bench", Count = containers, Command = Command,
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 4 * MiB, MemoryLimit = 16 * MiB,
        };

        // Warm-up: one container per host through each path, so neither pays a first-use cost alone.
        await AnchorAsync(rig, rig.Hosts.Count, parallel: false);
        await RemoveAnchorAsync(rig);
        var warm = await deployer.DeployAsync(spec with { Count = rig.Hosts.Count });
        await deployer.RemoveAsync(warm.Instances.Where(i => i.WorkloadId is not null).Select(i => i.WorkloadId!), TimeSpan.Zero);

        var eruS = new List<double>();
        var runS = new List<double>();
        var parallelS = new List<double>();
        var eruPer = new List<double>();
        var runPer = new List<double>();
        var parPer = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            // Alternate the order: whatever runs second meets a dockerd that just removed N containers.
            foreach (var which in round % 2 == 0 ? new[] { "eru", "run", "par" } : ["par", "run", "eru"])
            {
                await SettleAsync(store);
                if (which == "eru")
                {
                    var (seconds, per) = await EruAsync(deployer, spec, store, rig);
                    eruS.Add(seconds);
                    eruPer.AddRange(per);
                    Console.Error.WriteLine($"round {round + 1}: eru deploy of {containers}: {seconds:F2} s");
                }
                else
                {
                    var (seconds, per) = await AnchorAsync(rig, containers, parallel: which == "par");
                    (which == "par" ? parallelS : runS).Add(seconds);
                    (which == "run" ? runPer : parPer).AddRange(per);
                    await RemoveAnchorAsync(rig);
                    Console.Error.WriteLine($"round {round + 1}: " +
                        $"{(which == "par" ? "docker run, one loop per host in parallel" : "docker run loop")}: {seconds:F2} s");
                }
            }
        }

        // Medians: on a shared machine a round can be several times slower than the next.
        var eru = Stats.Percentile(eruS, 50);
        var run = Stats.Percentile(runS, 50);
        var par = Stats.Percentile(parallelS, 50);
        var result = new Dictionary<string, object>
        {
            ["containers"] = containers,
            ["hosts"] = hostCount,
            ["rounds"] = rounds,
            ["eru_s"] = Stats.Round(eru, 2),
            ["docker_run_s"] = Stats.Round(run, 2),
            ["ratio"] = Stats.Round(eru / run, 3),
            ["eru_s_each_round"] = eruS.Select(s => Stats.Round(s, 2)).ToArray(),
            ["docker_run_s_each_round"] = runS.Select(s => Stats.Round(s, 2)).ToArray(),
            ["docker_run_parallel_per_host_s"] = Stats.Round(par, 2),
            ["docker_run_parallel_s_each_round"] = parallelS.Select(s => Stats.Round(s, 2)).ToArray(),
            ["ratio_vs_parallel_docker_run"] = Stats.Round(eru / par, 3),
            ["eru_per_container_p50_ms"] = Stats.Round(Stats.Percentile(eruPer, 50), 1),
            ["eru_per_container_p99_ms"] = Stats.Round(Stats.Percentile(eruPer, 99), 1),
            ["docker_run_per_container_p50_ms"] = Stats.Round(Stats.Percentile(runPer, 50), 1),
            ["docker_run_per_container_p99_ms"] = Stats.Round(Stats.Percentile(runPer, 99), 1),
            ["docker_run_parallel_per_container_p50_ms"] = Stats.Round(Stats.Percentile(parPer, 50), 1),
            ["docker_run_parallel_per_container_p99_ms"] = Stats.Round(Stats.Percentile(parPer, 99), 1),
            ["targets_met"] = eru / par <= 0.9,
        };
        Console.WriteLine("RESULT deploy " + JsonSerializer.Serialize(result));
        return 0;
    }

    /// <summary>
    /// One deploy, timed from the request until it returns (every container started and recorded); then
    /// checked against Docker and removed. Per container: the time since the previous one finished on its
    /// node (a node's instances are created several at a time, so this is the node's pace, not one create), the
    /// first since the request.
    /// </summary>
    private static async Task<(double Seconds, List<double> PerContainer)> EruAsync(
        Deployer deployer, DeploySpec spec, RegistryStore store, DockerRig rig)
    {
        var last = new Dictionary<string, long>();
        var per = new List<double>();
        var start = Stopwatch.GetTimestamp();
        var result = await deployer.DeployAsync(spec, p =>
        {
            if (p.Instance is not { } i) return;
            lock (last)
            {
                var now = Stopwatch.GetTimestamp();
                per.Add(Stopwatch.GetElapsedTime(last.GetValueOrDefault(i.Node, start), now).TotalMilliseconds);
                last[i.Node] = now;
            }
        });
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (!result.Ok)
            throw new InvalidOperationException(
                "eru deploy failed: " + (result.Error ?? result.Instances.First(i => i.Error is not null).Error));
        var (records, _) = await store.ListAsync(Kinds.Workloads);
        if (records.Count != spec.Count) throw new InvalidOperationException($"{records.Count} workload records, expected {spec.Count}");
        var running = await RunningAsync(rig);
        if (running != spec.Count) throw new InvalidOperationException($"eru deploy: {running} of {spec.Count} containers running");
        var removed = await deployer.RemoveAsync(result.Instances.Select(i => i.WorkloadId!), TimeSpan.Zero);
        if (removed.FirstOrDefault(r => r.Error is not null) is { } failed)
            throw new InvalidOperationException($"remove {failed.Name}: {failed.Error}");
        return (seconds, per);
    }

    /// <summary>
    /// The anchor: <c>docker run -d</c> for each container, round robin over the hosts (or one loop per host,
    /// in parallel), with what the Deployer gives its containers. Checks they all run.
    /// </summary>
    private static async Task<(double Seconds, List<double> PerContainer)> AnchorAsync(DockerRig rig, int containers, bool parallel)
    {
        var per = new List<double>();
        string[] Args(int i)
        {
            var host = rig.Hosts[i % rig.Hosts.Count];
            var ident = $"{i:x6}";
            return ["run", "-d", "--name", $"bench_web_{ident}", "--network", DockerRig.Network, "--memory", "16m", "--memory-swap", "16m",
                "--label", $"{DockerEngine.AppLabel}=bench", "--label", $"{DockerEngine.EntrypointLabel}=web",
                "--label", $"{DockerEngine.IdentLabel}={ident}",
                "--label", $"{DockerEngine.NodeLabel}=h{host.Index}", DockerRig.Image, .. Command];
        }
        async Task One(int i)
        {
            var t = Stopwatch.GetTimestamp();
            await rig.Hosts[i % rig.Hosts.Count].DockerAsync(Args(i));
            lock (per) per.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }
        var start = Stopwatch.GetTimestamp();
        if (parallel)
        {
            await Task.WhenAll(Enumerable.Range(0, rig.Hosts.Count).Select(async h =>
            {
                for (var i = h; i < containers; i += rig.Hosts.Count) await One(i);
            }));
        }
        else
        {
            for (var i = 0; i < containers; i++) await One(i);
        }
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var running = await RunningAsync(rig);
        if (running != containers) throw new InvalidOperationException($"docker run: {running} of {containers} containers running");
        return (seconds, per);
    }

    /// <summary>
    /// Before each timed run: flush what the last clean-up left to write (vfs removes whole root file
    /// systems; etcd commits wait for fsync on the same disk), let it settle, and note etcd's commit latency.
    /// </summary>
    private static async Task SettleAsync(RegistryStore store)
    {
        await Shell.RunAsync("sync", []);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var ms = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var t = Stopwatch.GetTimestamp();
            await store.PutAsync(Kinds.Pods, new Pod { Name = "bench" });
            ms.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }
        Console.Error.WriteLine($"  settled; etcd commit p50 {Stats.Percentile(ms, 50):F1} ms");
    }

    private static async Task<int> RunningAsync(DockerRig rig)
    {
        var running = 0;
        foreach (var host in rig.Hosts)
            running += (await host.DockerAsync(["ps", "-q", "--filter", "status=running"]))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        return running;
    }

    private static async Task RemoveAnchorAsync(DockerRig rig)
    {
        foreach (var host in rig.Hosts)
        {
            var ids = (await host.DockerAsync(["ps", "-aq"])).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0) await host.DockerAsync(["rm", "-f", .. ids]);
        }
    }
}
