using System.Diagnostics;
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
/// </summary>
internal static class SshBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var runs = BenchCluster.Arg(args, "--runs", 30);
        var mib = BenchCluster.Arg(args, "--mib", 1024);
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
                "--Logging:Format", "simple", "--Logging:LogLevel:Default", "Warning"]);

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

            var result = new Dictionary<string, object>
            {
                ["runs"] = runs, ["mib"] = mib,
                ["eru_true_p50_ms"] = Stats.Round(Stats.Percentile(setup["eru"], 50), 1),
                ["eru_true_p99_ms"] = Stats.Round(Stats.Percentile(setup["eru"], 99), 1),
                ["sshd_true_p50_ms"] = Stats.Round(Stats.Percentile(setup["sshd"], 50), 1),
                ["sshd_true_p99_ms"] = Stats.Round(Stats.Percentile(setup["sshd"], 99), 1),
                ["setup_p50_ratio_vs_sshd"] = Stats.Round(Stats.Percentile(setup["eru"], 50) / Stats.Percentile(setup["sshd"], 50)),
                ["eru_mib_s"] = Math.Round(throughput["eru"]), ["sshd_mib_s"] = Math.Round(throughput["sshd"]),
                ["throughput_ratio_vs_sshd"] = Stats.Round(throughput["eru"] / throughput["sshd"]),
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
