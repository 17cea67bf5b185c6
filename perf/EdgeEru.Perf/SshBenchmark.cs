using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Perf;

/// <summary>
/// ssh: the gateway (eru-ssh → Docker exec) against the path users would otherwise build: OpenSSH sshd on a loopback
/// port whose forced command runs <c>docker exec</c> into the same container. Both: time to run <c>true</c>
/// (connect, auth, exec, exit; p50/p99) and bulk throughput of 1 GiB out of the container, with the ssh binary as client.
/// Then 100 sessions opened at once and kept open (<c>echo ready; exec cat</c>): each one's setup time until its
/// <c>ready</c> arrives, and the server's memory with all of them open: eru-ssh's RSS against the sum of the RSS of every
/// sshd process (the listener, and per session its privilege-separation monitor and the session's own sshd); the
/// <c>docker exec</c> clients the anchor runs per session are reported apart (and not counted against it). Two rounds,
/// the order swapped; the pooled setup times and each side's largest RSS are reported.
/// </summary>
internal static class SshBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var runs = BenchCluster.Arg(args, "--runs", 30);
        var mib = BenchCluster.Arg(args, "--mib", 1024);
        var sessions = BenchCluster.Arg(args, "--sessions", 100);
        if (!Environment.IsPrivilegedProcess)
            throw new InvalidOperationException("the ssh benchmark needs root (a simulated Docker host and sshd)");
        var sshd = Tools.Find("sshd", "openssh-server");
        var ssh = Tools.Find("ssh", "openssh-client");
        var keygen = Tools.Find("ssh-keygen", "openssh-client");
        var dir = Directory.CreateTempSubdirectory("eru-ssh-bench-").FullName;
        try
        {
            await using var rig = await DockerRig.StartAsync(1, 'b');
            var host = rig.Hosts[0];
            var container = (await host.DockerAsync(["run", "-d", "--network", "none", DockerRig.Image, "sleep", "1000000"])).Trim();

            // The registry says the container is live on h1 (records as Core and an agent would write them).
            await using var etcd = await EtcdServer.StartAsync();
            using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcd.ClientUrl });
            var store = new RegistryStore(conn);
            await using var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(30));
            await store.PutAsync(Kinds.Nodes, host.AsNode("bench", 2, 1L << 30));
            await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow }, lease.Id);
            await store.PutAsync(Kinds.Workloads, BenchCluster.Workload(0, 1, 1) with
            {
                Id = container, App = "bench", Entrypoint = "web", Ident = "bench1", Name = "bench_web_bench1", Node = "h1", Pod = "bench",
            });
            await store.PutAsync(Kinds.WorkloadStatus, BenchCluster.Status(0, 1, true) with { Id = container, Node = "h1" }, lease.Id);

            var key = Path.Combine(dir, "id_ed25519");
            await Shell.RunAsync(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", key]);
            var pub = (await File.ReadAllTextAsync(key + ".pub")).Trim();
            await store.PutAsync(Kinds.SshUsers,
                new SshUser { Name = "bench", Keys = [pub], Apps = new() { ["bench"] = new SshAppAccess() } });

            // The gateway, as built by perf/run.sh.
            var eruPort = Ports.FreeTcp();
            var dll = Path.Combine(AppContext.BaseDirectory, "..", "ssh", "eru-ssh.dll");
            await using var gateway = ChildProcess.Start("dotnet", [dll, "--Registry:Endpoints", etcd.ClientUrl,
                "--Ssh:Port", eruPort.ToString(), "--Ssh:HostKeyDirectory", Path.Combine(dir, "eru-keys"),
                "--Ssh:AuditLog", Path.Combine(dir, "audit.jsonl"), "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}",
                "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning",
                // The concurrent sessions are one user's: lift the per-user cap (20) as sshd's MaxStartups is lifted below.
                "--Ssh:MaxSessionsPerUser", (sessions + 10).ToString()]);

            // The anchor: sshd whose forced command is docker exec into the same container.
            var sshdPort = Ports.FreeTcp();
            await Shell.RunAsync(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(dir, "sshd_host_key")]);
            await File.WriteAllTextAsync(Path.Combine(dir, "authorized_keys"), pub + "\n");
            var docker = Tools.Find("docker", "docker.io");
            await File.WriteAllTextAsync(Path.Combine(dir, "sshd_config"), $"""
                Port {sshdPort}
                ListenAddress 127.0.0.1
                HostKey {Path.Combine(dir, "sshd_host_key")}
                AuthorizedKeysFile {Path.Combine(dir, "authorized_keys")}
                PidFile none
                StrictModes no
                UsePAM no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin prohibit-password
                MaxStartups {sessions + 10}
                ForceCommand {docker} -H {host.Endpoint} exec -i {container} sh -c "$SSH_ORIGINAL_COMMAND"
                """);
            Directory.CreateDirectory("/run/sshd"); // sshd's privilege separation directory
            await using var anchor = ChildProcess.Start(sshd, ["-D", "-e", "-f", Path.Combine(dir, "sshd_config")]);

            var knownHosts = Path.Combine(dir, "known_hosts");
            await WaitListening(eruPort, gateway, "eru-ssh");
            await WaitListening(sshdPort, anchor, "sshd");
            var eruKeys = Directory.GetFiles(Path.Combine(dir, "eru-keys"), "*.pub")
                .Select(f => $"[127.0.0.1]:{eruPort} {File.ReadAllText(f).Trim()}");
            await File.WriteAllLinesAsync(knownHosts,
                [.. eruKeys, $"[127.0.0.1]:{sshdPort} {File.ReadAllText(Path.Combine(dir, "sshd_host_key.pub")).Trim()}"]);

            string[] Args(int port, string login, string command) =>
            [
                "-F", "/dev/null", "-p", port.ToString(), "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=" + knownHosts, "-o", "LogLevel=ERROR", "-T", login + "@127.0.0.1", command,
            ];
            var targets = new (string Who, string[] Login)[]
            {
                ("eru", Args(eruPort, "bench~web.bench", "")), ("sshd", Args(sshdPort, "root", "")),
            };

            // Warm both paths until they answer.
            foreach (var (who, a) in targets)
                await Until(async () => (await RunSsh(ssh, [.. a[..^1], "true"])).Code == 0, $"{who} runs true");

            var setup = targets.ToDictionary(t => t.Who, _ => new List<double>());
            for (var i = 0; i < runs; i++)
                foreach (var (who, a) in targets)
                {
                    var r = await RunSsh(ssh, [.. a[..^1], "true"]);
                    if (r.Code != 0) throw new InvalidOperationException($"{who}: ssh true exited {r.Code}");
                    setup[who].Add(r.Ms);
                }

            var bytes = (long)mib << 20;
            var throughput = new Dictionary<string, double>();
            foreach (var (who, a) in targets)
            {
                var r = await RunSsh(ssh, [.. a[..^1], $"head -c {bytes} /dev/zero"], countOut: true);
                if (r.Code != 0 || r.Bytes != bytes)
                    throw new InvalidOperationException($"{who}: bulk read exited {r.Code} after {r.Bytes} of {bytes} bytes");
                throughput[who] = bytes / (1 << 20) / (r.Ms / 1000.0);
                Console.WriteLine($"{who,-5} bulk {mib} MiB in {r.Ms / 1000.0:F2} s = {throughput[who]:F0} MiB/s");
            }
            foreach (var (who, list) in setup)
                Console.WriteLine($"{who,-5} true: p50 {Stats.Percentile(list, 50):F1} ms  p99 {Stats.Percentile(list, 99):F1} ms  " +
                    $"({list.Count} runs)");

            // Many sessions at once, all kept open; the order swapped between rounds (the first meets a quieter dockerd).
            var servers = new Dictionary<string, int> { ["eru"] = gateway.Id, ["sshd"] = anchor.Id };
            var concurrentSetup = targets.ToDictionary(t => t.Who, _ => new List<double>());
            var rss = targets.ToDictionary(t => t.Who, _ => 0.0);
            var failed = targets.ToDictionary(t => t.Who, _ => 0);
            var execClientsMb = 0.0;
            var eruIdleMb = ServerRssKb(gateway.Id, "eru") / 1024.0;
            for (var round = 0; round < 2; round++)
                foreach (var (who, a) in round == 0 ? targets : Enumerable.Reverse(targets))
                {
                    var c = await ConcurrentAsync(ssh, a, sessions, servers[who], who);
                    concurrentSetup[who].AddRange(c.SetupMs);
                    rss[who] = Math.Max(rss[who], c.ServerRssMb);
                    failed[who] += c.Failed;
                    if (who == "sshd") execClientsMb = Math.Max(execClientsMb, c.DockerCliRssMb);
                    Console.WriteLine($"{who,-5} {sessions} sessions at once: setup p50 {Stats.Percentile(c.SetupMs, 50):F0} ms  " +
                        $"p99 {Stats.Percentile(c.SetupMs, 99):F0} ms  server RSS {c.ServerRssMb:F0} MB  failed {c.Failed}" +
                        (who == "sshd" ? $"  (docker exec clients {c.DockerCliRssMb:F0} MB)" : ""));
                }

            var setupRatio = Stats.Percentile(setup["eru"], 50) / Stats.Percentile(setup["sshd"], 50);
            var throughputRatio = throughput["eru"] / throughput["sshd"];
            var eruP99 = Stats.Percentile(concurrentSetup["eru"], 99);
            var sshdP99 = Stats.Percentile(concurrentSetup["sshd"], 99);
            var result = new Dictionary<string, object>
            {
                ["runs"] = runs, ["mib"] = mib,
                ["eru_true_p50_ms"] = Stats.Round(Stats.Percentile(setup["eru"], 50), 1),
                ["eru_true_p99_ms"] = Stats.Round(Stats.Percentile(setup["eru"], 99), 1),
                ["sshd_true_p50_ms"] = Stats.Round(Stats.Percentile(setup["sshd"], 50), 1),
                ["sshd_true_p99_ms"] = Stats.Round(Stats.Percentile(setup["sshd"], 99), 1),
                ["setup_p50_ratio_vs_sshd"] = Stats.Round(setupRatio),
                ["eru_mib_s"] = Math.Round(throughput["eru"]), ["sshd_mib_s"] = Math.Round(throughput["sshd"]),
                ["throughput_ratio_vs_sshd"] = Stats.Round(throughputRatio),
                ["concurrent_sessions"] = sessions,
                ["eru_concurrent_setup_p50_ms"] = Stats.Round(Stats.Percentile(concurrentSetup["eru"], 50), 1),
                ["eru_concurrent_setup_p99_ms"] = Stats.Round(eruP99, 1),
                ["sshd_concurrent_setup_p50_ms"] = Stats.Round(Stats.Percentile(concurrentSetup["sshd"], 50), 1),
                ["sshd_concurrent_setup_p99_ms"] = Stats.Round(sshdP99, 1),
                ["eru_concurrent_failed"] = failed["eru"], ["sshd_concurrent_failed"] = failed["sshd"],
                ["eru_rss_mb_idle"] = Math.Round(eruIdleMb),
                ["eru_rss_mb_100_sessions"] = Math.Round(rss["eru"]),
                ["sshd_rss_mb_100_sessions"] = Math.Round(rss["sshd"]),
                ["sshd_docker_exec_clients_rss_mb_100_sessions"] = Math.Round(execClientsMb),
                ["concurrent_setup_p99_ratio_vs_sshd"] = Stats.Round(eruP99 / sshdP99),
                ["rss_ratio_vs_sshd_100_sessions"] = Stats.Round(rss["eru"] / rss["sshd"]),
                ["targets_met"] = setupRatio < 1 && throughputRatio >= 1 && eruP99 <= sshdP99 && rss["eru"] <= rss["sshd"]
                    && failed["eru"] == 0,
            };
            Console.WriteLine("RESULT ssh " + JsonSerializer.Serialize(result));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int Code, double Ms, long Bytes)> RunSsh(string ssh, string[] args, bool countOut = false)
    {
        var psi = new ProcessStartInfo(ssh)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync();
        long total = 0;
        var buf = new byte[256 * 1024];
        int n;
        while ((n = await p.StandardOutput.BaseStream.ReadAsync(buf)) > 0) total += n;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await p.WaitForExitAsync(timeout.Token);
        var ms = sw.Elapsed.TotalMilliseconds;
        if (p.ExitCode != 0) Console.Error.WriteLine($"ssh exited {p.ExitCode}: {(await err).Trim()}");
        return (p.ExitCode, ms, countOut ? total : 0);
    }

    private sealed record ConcurrentRun(List<double> SetupMs, int Failed, double ServerRssMb, double DockerCliRssMb);

    /// <summary>
    /// Opens <paramref name="sessions"/> sessions at once (stdin kept open, as a user's), each timed from its client's start
    /// until its <c>ready</c> line; with all of them open, the server's RSS; then the clients are killed (by their pids).
    /// </summary>
    private static async Task<ConcurrentRun> ConcurrentAsync(string ssh, string[] args, int sessions, int serverPid, string who)
    {
        var clients = new List<Process>();
        var setup = new List<double>();
        var failed = 0;
        try
        {
            var ready = new List<Task>();
            for (var i = 0; i < sessions; i++)
            {
                var psi = new ProcessStartInfo(ssh)
                {
                    RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
                };
                foreach (var a in args[..^1]) psi.ArgumentList.Add(a);
                // Open until the client leaves, as a shell waiting for input: both servers then end it on stdin's EOF.
                psi.ArgumentList.Add("echo ready; exec cat >/dev/null");
                var sw = Stopwatch.StartNew();
                var p = Process.Start(psi)!;
                clients.Add(p);
                _ = p.StandardError.ReadToEndAsync();
                ready.Add(Task.Run(async () =>
                {
                    while (await p.StandardOutput.ReadLineAsync() is { } line)
                        if (line == "ready")
                        {
                            lock (setup) setup.Add(sw.Elapsed.TotalMilliseconds);
                            return;
                        }
                    Interlocked.Increment(ref failed);
                }));
            }
            // Bounded: a session that is not up within two minutes counts as failed.
            var all = Task.WhenAll(ready);
            if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromMinutes(2))) != all)
                failed = sessions - setup.Count;
            if (setup.Count == 0) throw new InvalidOperationException($"{who}: none of {sessions} concurrent sessions came up");
            var tree = Tree(serverPid).ToList();
            var server = tree.Sum(pid => ServerRssKb(pid, who)) / 1024.0;
            var dockerCli = tree.Where(pid => Comm(pid) == "docker").Sum(ProcessStats.RssKb) / 1024.0;
            return new ConcurrentRun(setup, failed, server, dockerCli);
        }
        finally
        {
            foreach (var p in clients)
            {
                if (!p.HasExited) p.Kill();
                await p.WaitForExitAsync();
                p.Dispose();
            }
            // The servers end those sessions before the next round (sshd: back to its listener alone).
            await Task.Delay(TimeSpan.FromSeconds(2));
            for (var i = 0; i < 150 && Tree(serverPid).Skip(1).Any(); i++) await Task.Delay(200);
        }
    }

    /// <summary>What counts as the server: eru-ssh's one process; for OpenSSH every sshd process (not the docker CLI).</summary>
    private static long ServerRssKb(int pid, string who) => who == "eru" || Comm(pid) == "sshd" ? ProcessStats.RssKb(pid) : 0;

    private static IEnumerable<int> Tree(int pid)
    {
        yield return pid;
        foreach (var c in Children(pid).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            foreach (var d in Tree(int.Parse(c, CultureInfo.InvariantCulture))) yield return d;
    }

    private static string Children(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children");
        }
        catch (IOException)
        {
            return ""; // gone meanwhile
        }
    }

    private static string Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static async Task WaitListening(int port, ChildProcess process, string what) =>
        await Until(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"{what} exited: {process.OutputTail()}");
            using var tcp = new TcpClient();
            try
            {
                await tcp.ConnectAsync("127.0.0.1", port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, $"{what} listening");

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(200);
        }
    }
}
