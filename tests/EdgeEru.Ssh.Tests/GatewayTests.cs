using System.Security.Cryptography;
using System.Text.Json;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Renci.SshNet;
using Xunit;

namespace EdgeEru.Ssh.Tests;

/// <summary>eru-ssh end to end: the real ssh client (and SSH.NET) through the gateway into containers on a real dockerd.</summary>
[Collection(GatewayRigCollection.Name)]
public sealed class GatewayTests(GatewayRig rig, Xunit.Abstractions.ITestOutputHelper output)
{
    private static void Ok(OpenSshClient.Result r, string stdout)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        Assert.Equal(stdout, r.Text);
    }

    [Fact]
    public async Task Commands_run_in_the_container_with_their_exit_codes()
    {
        var ident = rig.Instances[1].Ident;
        Ok(await rig.Ssh($"ops~{ident}", rig.OpsKey, "hostname"), rig.Instances[1].Id[..12] + "\n");
        Assert.Equal(3, (await rig.Ssh("ops~web.hello", rig.OpsKey, "exit 3")).ExitCode);
        Assert.Equal(137, (await rig.Ssh("ops~web.hello", rig.OpsKey, "kill -9 $$")).ExitCode);
    }

    [Fact]
    public async Task Every_target_form_picks_a_live_instance()
    {
        var first = rig.Instances[0].Id[..12] + "\n";
        var second = rig.Instances[1].Id[..12] + "\n";
        Ok(await rig.Ssh("ops~web.hello", rig.OpsKey, "hostname"), first);
        Ok(await rig.Ssh("ops~web.hello#2", rig.OpsKey, "hostname"), second);
        Ok(await rig.Ssh("ops~hello#2", rig.OpsKey, "hostname"), second);
        var name = (await rig.Store.GetAsync(Kinds.Workloads, rig.Instances[1].Id))!.Value.Name;
        Ok(await rig.Ssh($"ops~{name}", rig.OpsKey, "hostname"), second);
    }

    [Fact]
    public async Task Stdin_eof_reaches_the_process_and_stderr_stays_apart()
    {
        Ok(await rig.Ssh("ops~web.hello", rig.OpsKey, "cat", "hi\n"u8.ToArray()), "hi\n");
        var r = await rig.Ssh("ops~web.hello", rig.OpsKey, "echo out; echo err >&2");
        Ok(r, "out\n");
        Assert.Contains("err", r.Stderr);
    }

    [Fact]
    public async Task Megabytes_through_the_channel_both_ways()
    {
        var data = RandomNumberGenerator.GetBytes(8 << 20);
        var r = await rig.Ssh("ops~web.hello", rig.OpsKey, "cat", data);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(data.AsSpan().SequenceEqual(r.Stdout), $"{r.Stdout.Length} bytes came back of {data.Length}");
        var zeros = await rig.Ssh("ops~web.hello", rig.OpsKey, "head -c 100000000 /dev/zero", options: "RekeyLimit=16M");
        Assert.Equal(100_000_000, zeros.Stdout.Length);
    }

    [Fact]
    public async Task A_pty_session_has_term_and_size_and_follows_resizes()
    {
        var tty = await rig.Ssh("ops~web.hello", rig.OpsKey, "echo $TERM; tty", tty: true, options: "SetEnv=TERM=vt220");
        Assert.Equal(0, tty.ExitCode);
        Assert.StartsWith("vt220\r\n/dev/pts/", tty.Text);

        using var client = new SshClient("127.0.0.1", rig.Port, "ops~web.hello", new PrivateKeyFile(rig.OpsKey));
        client.Connect();
        using var shell = client.CreateShellStream("xterm", 100, 40, 0, 0, 4096);
        shell.WriteLine("stty size");
        Assert.Contains("40 100", await ReadUntil(shell, "40 100"));
        shell.ChangeWindowSize(132, 50, 0, 0);
        await Task.Delay(200); // the resize request and the next command travel separately
        shell.WriteLine("stty size");
        Assert.Contains("50 132", await ReadUntil(shell, "50 132"));
        shell.WriteLine("exit 0");
        client.Disconnect();
    }

    private static async Task<string> ReadUntil(ShellStream shell, string expected)
    {
        var text = new System.Text.StringBuilder();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && !text.ToString().Contains(expected, StringComparison.Ordinal))
        {
            var chunk = shell.Read();
            if (chunk.Length == 0) await Task.Delay(50);
            text.Append(chunk);
        }
        return text.ToString();
    }

    [Fact]
    public async Task A_login_without_target_lists_what_the_user_may_reach()
    {
        var r = await rig.Ssh("ops", rig.OpsKey, null);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"web.hello  shell  2 live: {rig.Instances[0].Ident}, {rig.Instances[1].Ident}", r.Stderr);
    }

    [Fact]
    public async Task Access_rules_are_enforced()
    {
        var stranger = await rig.Ssh("stranger~web.hello", rig.StrangerKey, "id");
        Assert.Equal(1, stranger.ExitCode);
        Assert.Contains("stranger may not enter app hello", stranger.Stderr);

        var shell = await rig.Ssh("auditor~web.hello", rig.AuditorKey, null);
        Assert.Equal(1, shell.ExitCode);
        Assert.Contains("may only run commands", shell.Stderr);
        // Commands run as the container user the registry names.
        Ok(await rig.Ssh("auditor~web.hello", rig.AuditorKey, "id -u"), "1234\n");

        var wrongKey = await rig.Ssh("ops~web.hello", rig.StrangerKey, "id");
        Assert.Equal(255, wrongKey.ExitCode);
        Assert.Contains("Permission denied", wrongKey.Stderr);
        var unknown = await rig.Ssh("nobody~web.hello", rig.OpsKey, "id");
        Assert.Equal(255, unknown.ExitCode);
        var malformed = await rig.Ssh("Ops~web.hello", rig.OpsKey, "id");
        Assert.Equal(255, malformed.ExitCode);
        var nothing = await rig.Ssh("ops~nothing.hello", rig.OpsKey, "id");
        Assert.Equal(1, nothing.ExitCode);
        Assert.Contains("no live instance matches \"nothing.hello\"", nothing.Stderr);
    }

    [Fact]
    public async Task A_container_that_is_gone_gets_a_clear_message()
    {
        // The registry still calls it live (a ghost node whose heartbeat we keep), but its dockerd has no such container.
        var host = rig.Rig.Hosts[0];
        await using var lease = await rig.Store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await rig.Store.PutAsync(Kinds.Nodes, host.AsNode("dev", 1, 1L << 30) with { Name = "ghost" });
        await rig.Store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "ghost", HeartbeatAt = DateTimeOffset.UtcNow }, lease.Id);
        var id = new string('f', 64);
        await rig.Store.PutAsync(Kinds.Workloads, Samples.Workload(id, "hello", "web", "ghost") with { Ident = "ghost1" });
        await rig.Store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, "ghost"), lease.Id);
        // And one that exists but was never started.
        var stopped = (await host.DockerAsync(["create", "--network", "none", EdgeEru.Dev.DockerRig.Image, "sleep", "1000"])).Trim();
        await rig.Store.PutAsync(Kinds.Workloads, Samples.Workload(stopped, "hello", "web", "ghost") with { Ident = "ghost2" });
        await rig.Store.PutAsync(Kinds.WorkloadStatus, Samples.Status(stopped, "ghost"), lease.Id);
        try
        {
            var r = await EventuallyResult(() => rig.Ssh("ops~ghost1", rig.OpsKey, "true"), r => !r.Stderr.Contains("no live instance"));
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("instance ghost1 is gone", r.Stderr);
            r = await EventuallyResult(() => rig.Ssh("ops~ghost2", rig.OpsKey, "true"), r => !r.Stderr.Contains("no live instance"));
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("instance ghost2 is not running", r.Stderr);
        }
        finally
        {
            await rig.Store.DeleteAsync(Kinds.Workloads, id);
            await rig.Store.DeleteAsync(Kinds.Workloads, stopped);
            await rig.Store.DeleteAsync(Kinds.Nodes, "ghost");
            await host.DockerAsync(["rm", "-f", stopped]);
        }
    }

    private static async Task<OpenSshClient.Result> EventuallyResult(
        Func<Task<OpenSshClient.Result>> run, Func<OpenSshClient.Result, bool> done)
    {
        for (var i = 0; ; i++)
        {
            var r = await run();
            if (done(r) || i == 50) return r;
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Logins_and_sessions_are_audited_and_measured()
    {
        Ok(await rig.Ssh("ops~web.hello", rig.OpsKey, "echo audited"), "audited\n");
        await rig.Ssh("ops~web.hello", rig.StrangerKey, "echo refused");
        var fingerprint = Ssh.Keys.SshPublicKey.ParseAuthorizedKey(OpenSshClient.PublicKeyLine(rig.OpsKey)).Key.Fingerprint;
        List<JsonElement> lines = [];
        await Eventually.True(() =>
        {
            lines = File.ReadAllLines(rig.AuditPath).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            return lines.Any(l => Str(l, "event") == "session_end" && Str(l, "command") == "echo audited");
        }, TimeSpan.FromSeconds(10), "the session's end in the audit log");
        Assert.Contains(lines, l => Str(l, "event") == "login_accepted" && Str(l, "key") == fingerprint
                                    && Str(l, "target") == "web.hello");
        Assert.Contains(lines, l => Str(l, "event") == "session_start" && Str(l, "command") == "echo audited"
                                    && Str(l, "node") == "h1");
        var end = lines.Last(l => Str(l, "event") == "session_end" && Str(l, "command") == "echo audited");
        Assert.Equal(0, end.GetProperty("exit_code").GetInt32());
        Assert.Equal(8, end.GetProperty("bytes_out").GetInt64());
        Assert.True(lines.Any(l => Str(l, "event") == "login_refused" && Str(l, "login") == "ops~web.hello"),
            string.Join("\n", lines.Where(l => Str(l, "event") == "login_refused")));

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{rig.HttpPort}/metrics");
        Assert.Contains("eru_ssh_logins_total{result=\"accepted\"}", metrics);
        Assert.Contains("eru_ssh_sessions_total{result=\"completed\"}", metrics);
        var health = await http.GetAsync($"http://127.0.0.1:{rig.HttpPort}/healthz");
        Assert.True(health.IsSuccessStatusCode);
        Assert.Contains("\"serving\"", await health.Content.ReadAsStringAsync());
    }

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;

    [Fact]
    public async Task A_user_removed_from_the_registry_cannot_log_in_any_more()
    {
        var key = await rig.Client.KeyAsync("ed25519", "temp");
        await rig.Store.PutAsync(Kinds.SshUsers,
            new SshUser { Name = "temp", Keys = [OpenSshClient.PublicKeyLine(key)], Apps = new() { ["*"] = new SshAppAccess() } });
        var ok = await EventuallyResult(() => rig.Ssh("temp~web.hello", key, "echo in"), r => r.ExitCode == 0);
        Ok(ok, "in\n");
        await rig.Store.DeleteAsync(Kinds.SshUsers, "temp");
        var gone = await EventuallyResult(() => rig.Ssh("temp~web.hello", key, "echo in"), r => r.ExitCode != 0);
        Assert.Equal(255, gone.ExitCode);
    }

    [Fact]
    public async Task Sftp_and_scp_reach_the_containers_sftp_server()
    {
        var dir = Directory.CreateTempSubdirectory("eru-sftp-").FullName;
        try
        {
            var local = Path.Combine(dir, "up.bin");
            var data = RandomNumberGenerator.GetBytes(3 << 20);
            await File.WriteAllBytesAsync(local, data);
            var back = Path.Combine(dir, "down.bin");
            var r = await rig.Client.SftpAsync(rig.Port, "ops~web.hello#1", rig.OpsKey,
                $"put {local} /tmp/up.bin\nls -l /tmp\nget /tmp/up.bin {back}\n");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("up.bin", r.Text);
            Assert.Equal(data, await File.ReadAllBytesAsync(back));

            // scp refuses '#' in a user name: the ident names the same instance.
            var login = $"ops~{rig.Instances[0].Ident}";
            var scpBack = Path.Combine(dir, "scp.bin");
            var scp = await rig.Client.ScpAsync(rig.Port, rig.OpsKey, local, $"{login}@127.0.0.1:/tmp/scp.bin");
            Assert.True(scp.ExitCode == 0, scp.Stderr);
            scp = await rig.Client.ScpAsync(rig.Port, rig.OpsKey, $"{login}@127.0.0.1:/tmp/scp.bin", scpBack);
            Assert.True(scp.ExitCode == 0, scp.Stderr);
            Assert.Equal(data, await File.ReadAllBytesAsync(scpBack));

            // The second instance has no sftp-server: the client is told so.
            var none = await rig.Client.SftpAsync(rig.Port, "ops~web.hello#2", rig.OpsKey, "ls\n");
            Assert.NotEqual(0, none.ExitCode);
            Assert.Contains("no sftp-server", none.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task User_certificates_from_the_trusted_ca_log_in_and_are_checked()
    {
        var keygen = EdgeEru.Dev.Tools.Find("ssh-keygen", "openssh-client");
        async Task<string[]> Certified(string name, params string[] sign)
        {
            var key = await rig.Client.KeyAsync("ed25519", name); // not listed for any user
            await EdgeEru.Dev.Shell.RunAsync(keygen, ["-q", "-s", rig.CaKey, "-I", name, .. sign, key + ".pub"]);
            return [key, "CertificateFile=" + key + "-cert.pub"];
        }
        var valid = await Certified("cert_valid", "-n", "ops", "-V", "-5m:+1h", "-z", "7");
        Ok(await rig.Ssh("ops~web.hello", valid[0], "echo certified", options: valid[1]), "certified\n");

        var expired = await Certified("cert_expired", "-n", "ops", "-V", "20200101:20200102");
        var r = await rig.Ssh("ops~web.hello", expired[0], "echo no", options: expired[1]);
        Assert.Equal(255, r.ExitCode);
        var wrong = await Certified("cert_wrong", "-n", "auditor");
        r = await rig.Ssh("ops~web.hello", wrong[0], "echo no", options: wrong[1]);
        Assert.Equal(255, r.ExitCode);

        List<JsonElement> lines = [];
        await Eventually.True(() =>
        {
            lines = File.ReadAllLines(rig.AuditPath).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            return lines.Count(l => Str(l, "event") == "login_refused" && Str(l, "cert_id") is "cert_expired" or "cert_wrong") >= 2;
        }, TimeSpan.FromSeconds(10), "both refused certificates in the audit log");
        Assert.Contains(lines, l => Str(l, "event") == "login_accepted" && Str(l, "cert_id") == "cert_valid");
        Assert.Contains(lines, l => Str(l, "cert_id") == "cert_expired" && Str(l, "reason")!.Contains("expired"));
        Assert.Contains(lines, l => Str(l, "cert_id") == "cert_wrong" && Str(l, "reason")!.Contains("do not include ops"));
    }

    [Theory]
    [InlineData("--Ssh:IdleTimeoutSeconds", "idle for 1 s")]
    [InlineData("--Ssh:MaxSessionSeconds", "longer than 1 s")]
    public async Task Session_limits_end_sessions_with_a_message(string setting, string message)
    {
        var (host, port) = await rig.StartGatewayAsync(new XunitLoggerProvider(output), setting, "1");
        try
        {
            // Same host keys as the main gateway (same directory), trusted for this port too.
            rig.Client.TrustHost(port, rig.HostKeyLines);
            var r = await rig.Client.RunAsync(port, "ops~web.hello", rig.OpsKey, "sleep 30; echo finished");
            Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stderr}");
            Assert.Contains(message, r.Stderr);
            Assert.DoesNotContain("finished", r.Text); // ended by the limit, not by the command
        }
        finally
        {
            rig.Client.TrustHost(rig.Port, rig.HostKeyLines);
            await host.StopAsync();
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_gateway_on_both_families_takes_openssh_over_ipv6_and_ipv4()
    {
        // "::" is one dual-stack socket: IPv6 clients, and IPv4 ones as ::ffff:a.b.c.d (audited as a.b.c.d).
        var audit = Path.Combine(rig.Client.Dir, "audit-dual.jsonl");
        var (host, port) = await rig.StartGatewayAsync(new XunitLoggerProvider(output), "--Ssh:Listen", "::", "--Ssh:AuditLog", audit);
        try
        {
            rig.Client.TrustHost(port, rig.HostKeyLines);
            var id = rig.Instances[0].Id[..12] + "\n";
            Ok(await rig.Client.RunAsync(port, "ops~web.hello", rig.OpsKey, "hostname", host: "::1"), id);
            Ok(await rig.Client.RunAsync(port, "ops~web.hello", rig.OpsKey, "hostname", host: "127.0.0.1"), id);
            var remotes = await Eventually.Value(async () =>
            {
                var logins = (await File.ReadAllLinesAsync(audit)).Select(l => JsonDocument.Parse(l).RootElement)
                    .Where(e => e.GetProperty("event").GetString() == "login_accepted")
                    .Select(e => e.GetProperty("remote").GetString()!).ToList();
                return logins.Count >= 2 ? logins : null;
            }, TimeSpan.FromSeconds(10), "both logins audited");
            Assert.Equal(2, remotes.Count);
            Assert.StartsWith("[::1]:", remotes[0], StringComparison.Ordinal);
            Assert.StartsWith("127.0.0.1:", remotes[1], StringComparison.Ordinal);
        }
        finally
        {
            rig.Client.TrustHost(rig.Port, rig.HostKeyLines);
            await host.StopAsync();
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task Sessions_are_recorded_as_asciicast()
    {
        var dir = Path.Combine(rig.Client.Dir, "casts");
        var (host, port) = await rig.StartGatewayAsync(new XunitLoggerProvider(output), "--Ssh:RecordDirectory", dir);
        try
        {
            rig.Client.TrustHost(port, rig.HostKeyLines);
            var r = await rig.Client.RunAsync(port, "ops~web.hello", rig.OpsKey, "echo recorded", tty: true,
                options: ["SetEnv=TERM=xterm"]);
            Assert.Equal(0, r.ExitCode);
            var cast = Assert.Single(Directory.GetFiles(dir, "*.cast"));
            var lines = File.ReadAllLines(cast);
            var header = JsonDocument.Parse(lines[0]).RootElement;
            Assert.Equal(2, header.GetProperty("version").GetInt32());
            Assert.Equal("xterm", header.GetProperty("env").GetProperty("TERM").GetString());
            var output = string.Concat(lines.Skip(1).Select(l => JsonDocument.Parse(l).RootElement)
                .Where(e => e[1].GetString() == "o").Select(e => e[2].GetString()));
            Assert.Contains("recorded", output);
        }
        finally
        {
            rig.Client.TrustHost(rig.Port, rig.HostKeyLines);
            await host.StopAsync();
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_client_that_leaves_mid_session_still_gets_its_session_end_audited()
    {
        await Assert.ThrowsAsync<TimeoutException>(() => rig.Client.RunAsync(rig.Port, "ops~web.hello", rig.OpsKey,
            "echo started; sleep 31", timeout: TimeSpan.FromSeconds(3)));
        await Eventually.True(() => File.ReadAllLines(rig.AuditPath).Select(l => JsonDocument.Parse(l).RootElement)
                .Any(l => Str(l, "event") == "session_end" && Str(l, "command") == "echo started; sleep 31"
                          && Str(l, "outcome") == "client_left" && l.GetProperty("bytes_out").GetInt64() == 8),
            TimeSpan.FromSeconds(15), "session_end of the abandoned session, with the bytes it sent");
        // Its process was hung up, as sshd's would be.
        string ps = "";
        for (var i = 0; i < 50 && (ps = (await rig.Ssh("ops~web.hello", rig.OpsKey, "ps")).Text).Contains("sleep 31"); i++)
            await Task.Delay(100);
        Assert.DoesNotContain("sleep 31", ps);
    }

    [Fact]
    public async Task A_signal_from_the_client_reaches_the_process()
    {
        using var client = new SshClient("127.0.0.1", rig.Port, "ops~web.hello", new PrivateKeyFile(rig.OpsKey));
        client.Connect();
        using var cmd = client.CreateCommand("sleep 29");
        var run = cmd.ExecuteAsync();
        await Task.Delay(1000); // the exec has started
        try
        {
            cmd.CancelAsync(); // SSH.NET sends signal TERM
            await run;
        }
        catch (OperationCanceledException)
        {
            // SSH.NET reports its own cancellation
        }
        await Eventually.True(() => File.ReadAllLines(rig.AuditPath).Select(l => JsonDocument.Parse(l).RootElement)
                .Any(l => Str(l, "event") == "session_end" && Str(l, "command") == "sleep 29"
                          && l.GetProperty("exit_code").GetInt32() == 143),
            TimeSpan.FromSeconds(15), "the command ended by SIGTERM (exit code 143)");
        client.Disconnect();
    }

    [Fact]
    public async Task Sessions_per_user_are_capped()
    {
        var (host, port) = await rig.StartGatewayAsync(new XunitLoggerProvider(output), "--Ssh:MaxSessionsPerUser", "1");
        try
        {
            rig.Client.TrustHost(port, rig.HostKeyLines);
            using var client = new SshClient("127.0.0.1", port, "ops~web.hello", new PrivateKeyFile(rig.OpsKey));
            client.Connect();
            using var first = client.CreateCommand("echo first; sleep 5");
            var running = first.ExecuteAsync();
            await Task.Delay(1000);
            var second = await rig.Client.RunAsync(port, "ops~web.hello", rig.OpsKey, "echo second");
            Assert.Equal(1, second.ExitCode);
            Assert.Contains("ops already has 1 sessions open", second.Stderr);
            await running;
            Assert.Equal("first\n", first.Result);
            client.Disconnect();
        }
        finally
        {
            rig.Client.TrustHost(rig.Port, rig.HostKeyLines);
            await host.StopAsync();
            await host.DisposeAsync();
        }
    }
}
