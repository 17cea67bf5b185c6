using System.Diagnostics;
using System.Net;
using System.Text.Json;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Perf;

/// <summary>
/// Two datacenters (docs/multi-dc.md): dc1's etcd with eru-dns and eru-lb (the real binaries) following dc2's etcd
/// read-only; dc1's instance a busybox httpd on loopback, dc2's one in a network namespace behind a veth, reached
/// through a <see cref="WanLink"/> that delays each direction (the WAN: this kernel has no netem qdisc). Measured:
/// DNS failover (the last local instance turns unhealthy in etcd →
/// the main name answers dc2's), LB failover by the registry (the same) and by the data path alone (the local httpd
/// killed, nothing told: the retry goes on to dc2), and the latency of a request to dc2 next to one kept in dc1.
/// Targets (issue 17): DNS within 1 s, the LB within 100 ms, no failed request.
/// </summary>
internal static class MultiDcBenchmark
{
    // A /30 of the test range on our own veth: dc2's host, and the root side where the WAN link listens (dc2's address).
    private const string Remote = "198.19.254.250", RootSide = "198.19.254.249";

    public static async Task<int> RunAsync(string[] args)
    {
        var delayMs = BenchCluster.Arg(args, "--wan-delay-ms", 5);
        var rounds = BenchCluster.Arg(args, "--rounds", 20);
        var requests = BenchCluster.Arg(args, "--requests", 2000);
        var dir = Directory.CreateTempSubdirectory("eru-multidc-bench-").FullName;
        var ns = "mdc" + Guid.NewGuid().ToString("N")[..6];
        try
        {
            await Dc2HostAsync(ns);
            await using var wan = new WanLink(new IPEndPoint(IPAddress.Parse(RootSide), 8080),
                new IPEndPoint(IPAddress.Parse(Remote), 8080), TimeSpan.FromMilliseconds(delayMs));
            await using var dc1Etcd = await EtcdServer.StartAsync();
            await using var dc2Etcd = await EtcdServer.StartAsync();
            using var dc1Conn = new EtcdConnection(new RegistryOptions { Endpoints = dc1Etcd.ClientUrl });
            using var dc2Conn = new EtcdConnection(new RegistryOptions { Endpoints = dc2Etcd.ClientUrl });
            var (dc1, dc2) = (new RegistryStore(dc1Conn), new RegistryStore(dc2Conn));
            await dc1.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc1" });
            await dc2.PutAsync(Kinds.Datacenters, new Datacenter { Name = "dc2" });

            // The instances: busybox httpd answering its datacenter's name.
            var localPort = Ports.FreeTcp();
            var busybox = Tools.Find("busybox", "busybox-static");
            foreach (var dc in new[] { "dc1", "dc2" })
            {
                Directory.CreateDirectory(Path.Combine(dir, dc));
                await File.WriteAllTextAsync(Path.Combine(dir, dc, "index.html"), dc);
            }
            var started = new List<ChildProcess>(); // every local httpd, killed at the end whatever happens
            ChildProcess LocalHttpd()
            {
                var p = ChildProcess.Start(busybox, ["httpd", "-f", "-p", $"127.0.0.1:{localPort}", "-h", Path.Combine(dir, "dc1")]);
                started.Add(p);
                return p;
            }
            var local = LocalHttpd();
            await using var stopLocal = new AsyncCleanup(async () =>
            {
                foreach (var p in started) await p.DisposeAsync(kill: true);
            });
            await using var remoteHttpd = ChildProcess.Start(Tools.Find("nsenter", "util-linux"),
                [$"--net=/var/run/netns/{ns}", busybox, "httpd", "-f", "-p", $"{Remote}:8080", "-h", Path.Combine(dir, "dc2")]);
            await using var dc1Lease = await dc1.GrantLeaseAsync(TimeSpan.FromMinutes(10));
            await using var dc2Lease = await dc2.GrantLeaseAsync(TimeSpan.FromMinutes(10));
            await LiveAsync(dc1, dc1Lease.Id, "dc1web", "127.0.0.1", localPort, healthy: true);
            await LiveAsync(dc2, dc2Lease.Id, "dc2web", RootSide, 8080, healthy: true); // reached across the WAN link
            foreach (var (name, datacenters) in new[]
                     { ("shop.bench", new[] { "local", "any" }), ("local.bench", ["local"]), ("remote.bench", ["dc2"]) })
                await dc1.PutAsync(Kinds.LbDomains, new LbDomain
                {
                    Name = name, Init = "web",
                    Nodes = new()
                    {
                        ["web"] = new LbNode
                        {
                            Type = "backend", Options = new LbBackendOptions { Retries = 2, TimeoutMs = 2000 },
                            Select = new LbSelector { App = "shop", Entrypoint = "web", Port = "http", Datacenters = datacenters },
                        },
                    },
                });

            // The edge of dc1, as the real binaries, following dc2 read-only.
            string[] follow = ["--Registry:Endpoints", dc1Etcd.ClientUrl, "--Registry:Datacenters:0:Name", "dc2",
                "--Registry:Datacenters:0:Endpoints", dc2Etcd.ClientUrl, "--Registry:LivenessGrace", "00:00:00",
                "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning"];
            var (dnsPort, lbPort) = (Ports.FreeTcp(), Ports.FreeTcp());
            await using var dns = ChildProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "..", "dns", "eru-dns.dll"),
                .. follow, "--Dns:Port", dnsPort.ToString(), "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"]);
            await using var lb = ChildProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "..", "lb", "eru-lb.dll"),
                .. follow, "--Lb:Urls", $"http://127.0.0.1:{lbPort}", "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}",
                "--Lb:AdminUrls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Lb:AdminToken", "bench"]);
            using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            {
                Timeout = TimeSpan.FromSeconds(10),
            };
            async Task<string> Get(string host)
            {
                using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{lbPort}/") { Headers = { Host = host } };
                try
                {
                    using var resp = await http.SendAsync(req);
                    var body = (await resp.Content.ReadAsStringAsync()).Trim();
                    return resp.IsSuccessStatusCode ? body : $"{(int)resp.StatusCode}";
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    return "error";
                }
            }
            using var probe = new DnsProbe(dnsPort);
            await UntilAsync(async () => await Get("remote.bench") == "dc2" && await Get("shop.bench") == "dc1"
                && probe.FirstA("web.shop.eru") == "127.0.0.1" && probe.FirstA("web.shop.dc2.eru") == RootSide,
                TimeSpan.FromSeconds(60), "eru-dns and eru-lb serving both datacenters", lb);

            // 1. A request kept in dc1 next to one sent to dc2 (the WAN link's delay each way).
            var (localMs, remoteMs, directMs) = (new List<double>(), new List<double>(), new List<double>());
            for (var i = 0; i < requests; i++)
            {
                var sent = Stopwatch.GetTimestamp(); // the anchor: straight to dc2's instance across the link, no eru-lb
                var direct = await http.GetStringAsync(new Uri($"http://{RootSide}:8080/"));
                if (direct.Trim() != "dc2") throw new InvalidOperationException($"dc2's instance answered {direct}");
                directMs.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                foreach (var (host, into, expect) in new[] { ("local.bench", localMs, "dc1"), ("remote.bench", remoteMs, "dc2") })
                {
                    var t = Stopwatch.GetTimestamp();
                    var body = await Get(host);
                    if (body != expect) throw new InvalidOperationException($"{host} answered {body}, not {expect}");
                    into.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                }
            }
            Console.WriteLine($"local p50 {Stats.Percentile(localMs, 50):F2} ms, dc2 p50 {Stats.Percentile(remoteMs, 50):F2} ms "
                + $"(WAN delay {delayMs} ms each way)");

            // 2. Failover by the registry: dc1's instance turns unhealthy (as its agent writes on a death) → dc2 serves.
            var (dnsFailover, lbFailover) = (new List<double>(), new List<double>());
            for (var r = 0; r < rounds; r++)
            {
                await LiveAsync(dc1, dc1Lease.Id, "dc1web", "127.0.0.1", localPort, healthy: false);
                var acked = Stopwatch.GetTimestamp();
                await UntilAsync(() => Task.FromResult(probe.FirstA("web.shop.eru") == RootSide), TimeSpan.FromSeconds(10),
                    "web.shop.eru answers dc2", dns, pollMs: 0);
                dnsFailover.Add(Stopwatch.GetElapsedTime(acked).TotalMilliseconds);
                await LiveAsync(dc1, dc1Lease.Id, "dc1web", "127.0.0.1", localPort, healthy: true);
                await UntilAsync(() => Task.FromResult(probe.FirstA("web.shop.eru") == "127.0.0.1"), TimeSpan.FromSeconds(10),
                    "web.shop.eru answers dc1 again", dns);

                await UntilAsync(async () => await Get("shop.bench") == "dc1", TimeSpan.FromSeconds(10), "dc1 serves again", lb);
                await LiveAsync(dc1, dc1Lease.Id, "dc1web", "127.0.0.1", localPort, healthy: false);
                acked = Stopwatch.GetTimestamp();
                await UntilAsync(async () => await Get("shop.bench") == "dc2", TimeSpan.FromSeconds(10), "shop.bench to dc2", lb,
                    pollMs: 0);
                lbFailover.Add(Stopwatch.GetElapsedTime(acked).TotalMilliseconds);
                await LiveAsync(dc1, dc1Lease.Id, "dc1web", "127.0.0.1", localPort, healthy: true);
            }

            // 3. Failover by the data path alone: the local httpd killed with nothing told; requests back to back.
            var (passive, failed) = (new List<double>(), 0);
            for (var r = 0; r < 3; r++)
            {
                await UntilAsync(async () => await Get("shop.bench") == "dc1", TimeSpan.FromSeconds(30), "dc1 serves (ejection over)", lb);
                await local.DisposeAsync(kill: true);
                started.Remove(local);
                var killed = Stopwatch.GetTimestamp();
                while (true)
                {
                    var body = await Get("shop.bench");
                    if (body == "dc2")
                    {
                        passive.Add(Stopwatch.GetElapsedTime(killed).TotalMilliseconds);
                        break;
                    }
                    if (body != "dc1") failed++;
                    if (Stopwatch.GetElapsedTime(killed) > TimeSpan.FromSeconds(10)) throw new TimeoutException("no failover to dc2");
                }
                for (var i = 0; i < 50; i++)
                    if (await Get("shop.bench") != "dc2") failed++;
                local = LocalHttpd();
            }

            var result = new Dictionary<string, object>
            {
                ["wan_delay_ms_each_way"] = delayMs,
                ["local_p50_ms"] = Stats.Round(Stats.Percentile(localMs, 50)),
                ["local_p99_ms"] = Stats.Round(Stats.Percentile(localMs, 99)),
                ["cross_dc_p50_ms"] = Stats.Round(Stats.Percentile(remoteMs, 50)),
                ["cross_dc_p99_ms"] = Stats.Round(Stats.Percentile(remoteMs, 99)),
                ["cross_dc_overhead_p50_ms"] = Stats.Round(Stats.Percentile(remoteMs, 50) - Stats.Percentile(localMs, 50)),
                ["direct_to_other_dc_p50_ms"] = Stats.Round(Stats.Percentile(directMs, 50)),
                ["direct_to_other_dc_p99_ms"] = Stats.Round(Stats.Percentile(directMs, 99)),
                ["dns_failover_p50_ms"] = Stats.Round(Stats.Percentile(dnsFailover, 50)),
                ["dns_failover_p99_ms"] = Stats.Round(Stats.Percentile(dnsFailover, 99)),
                ["lb_failover_p50_ms"] = Stats.Round(Stats.Percentile(lbFailover, 50)),
                ["lb_failover_p99_ms"] = Stats.Round(Stats.Percentile(lbFailover, 99)),
                ["lb_failover_instance_killed_max_ms"] = Stats.Round(passive.Max()),
                ["lb_failover_failed_requests"] = failed,
                ["targets_met"] = Stats.Percentile(dnsFailover, 99) <= 1000 && Stats.Percentile(lbFailover, 99) <= 100
                    && passive.Max() <= 100 && failed == 0,
            };
            Console.WriteLine("RESULT multidc " + JsonSerializer.Serialize(result));
            return 0;
        }
        finally
        {
            try
            {
                await Shell.RunAsync("ip", ["netns", "del", ns]);
                await Shell.RunAsync("ip", ["link", "del", "v" + ns]);
            }
            catch (CommandFailedException)
            {
                // Gone with the namespace already.
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class AsyncCleanup(Func<Task> cleanup) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await cleanup();
    }

    /// <summary>dc2's host: a namespace behind a veth (a /30).</summary>
    private static async Task Dc2HostAsync(string ns)
    {
        await Shell.RunAsync("ip", ["netns", "add", ns]);
        await Shell.RunAsync("ip", ["link", "add", "v" + ns, "type", "veth", "peer", "name", "p" + ns]);
        await Shell.RunAsync("ip", ["link", "set", "p" + ns, "netns", ns]);
        await Shell.RunAsync("ip", ["-n", ns, "link", "set", "p" + ns, "name", "eth0"]);
        await Shell.RunAsync("ip", ["addr", "add", RootSide + "/30", "dev", "v" + ns]);
        await Shell.RunAsync("ip", ["link", "set", "v" + ns, "up"]);
        await Shell.RunAsync("ip", ["-n", ns, "addr", "add", Remote + "/30", "dev", "eth0"]);
        await Shell.RunAsync("ip", ["-n", ns, "link", "set", "eth0", "up"]);
        await Shell.RunAsync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }

    /// <summary>The instance's record and its status (healthy or not, as its agent would write it) under the lease.</summary>
    private static async Task LiveAsync(RegistryStore store, long lease, string id, string ip, int port, bool healthy)
    {
        await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "n1", HeartbeatAt = DateTimeOffset.UtcNow }, lease);
        await store.PutAsync(Kinds.Workloads, new Workload
        {
            Id = id, Name = "shop_web_" + id, App = "shop", Entrypoint = "web", Ident = id, Pod = "bench", Node = "n1", Image = "busybox",
            Networks = StringMap.Of(("wan", ip)), Ports = [new PublishedPort { Name = "http", Port = port }],
        });
        await store.PutAsync(Kinds.WorkloadStatus, new WorkloadStatus
        {
            Id = id, Node = "n1", Running = true, Healthy = healthy, Addresses = StringMap.Of(("wan", ip)),
            CheckedAt = DateTimeOffset.UtcNow, Reason = healthy ? null : "http /: connection refused",
        }, lease);
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, ChildProcess process,
        int pollMs = 20)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (process.HasExited) throw new InvalidOperationException($"{what}: process exited:\n{process.OutputTail()}");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what}: not within {timeout.TotalSeconds:F0}s:\n{process.OutputTail()}");
            if (pollMs > 0) await Task.Delay(pollMs);
        }
    }
}
