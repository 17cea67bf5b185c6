using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;

namespace EdgeEru.Dev;

/// <summary>
/// One fault and what the clients saw from its injection until the platform was whole again (and two seconds
/// more): DNS answers and HTTP requests (failed, and DNS answers naming the dead address, counted apart), SSH
/// commands, and the seconds from the end of the injection to whole (-1: not whole within the limit).
/// </summary>
public sealed record FaultOutcome(string Fault, EdgeLoadResult Load, long SshOk, long SshFailed, double RecoverSeconds, string Note)
{
    public override string ToString() =>
        $"{Fault}: {Load}; SSH {SshOk} ok, {SshFailed} failed; whole again after {RecoverSeconds:0.0} s"
        + (Note.Length > 0 ? "; " + Note : "");
}

/// <summary>The faults in order, then what the registry and Docker disagree on once the run is over.</summary>
public sealed record ChaosOutcome(IReadOnlyList<FaultOutcome> Faults, int Leaked, int Lost, double ConvergedSeconds)
{
    public long FailedRequests => Faults.Sum(f => f.Load.DnsFailed + f.Load.HttpFailed + f.SshFailed);
}

/// <summary>
/// A fixed script of faults against a running <c>./eru dev --hosts 3 --etcd-members 3</c> (which keeps its parts
/// running, as systemd would), under continuous DNS queries, HTTP requests through the LB and SSH commands through
/// the gateway: a container crashes, a backend hangs for a while, an agent is killed, one host's dockerd restarts,
/// Core is killed in the middle of a deploy, the etcd leader is killed, every etcd member freezes for twice the
/// lease TTL, an etcd member restarts. Then no container of the cluster may be unknown to the registry and no
/// record may lack its container. Bounded: each fault waits at most <see cref="RecoverLimit"/>.
/// </summary>
public sealed class ChaosRun(EruDev dev, Action<string> log)
{
    public static readonly TimeSpan RecoverLimit = TimeSpan.FromSeconds(90);

    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(9); // the agents' default

    private EdgeLoad? _load;
    private long _sshOk, _sshFailed;

    public async Task<ChaosOutcome> RunAsync(CancellationToken ct = default)
    {
        var load = _load = new EdgeLoad([new IPEndPoint(IPAddress.Loopback, dev.DnsPort)], [new IPEndPoint(IPAddress.Loopback, dev.LbPort)],
            "web.hello.eru", "hello.eru.local", TimeSpan.FromSeconds(2));
        var outcomes = new List<FaultOutcome>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var ssh = Task.Run(() => SshLoopAsync(stop.Token), CancellationToken.None);
        await load.RunAsync(async () =>
        {
            await WaitWholeAsync("before the first fault");
            outcomes.Add(await MeasureAsync("container crash", ContainerCrashAsync));
            outcomes.Add(await MeasureAsync("backend hangs 5 s", BackendHangsAsync));
            outcomes.Add(await MeasureAsync("agent SIGKILL", AgentKillAsync));
            outcomes.Add(await MeasureAsync("dockerd restart", DockerdRestartAsync));
            outcomes.Add(await MeasureAsync("Core SIGKILL mid-deploy", CoreKillMidDeployAsync));
            outcomes.Add(await MeasureAsync("etcd leader SIGKILL", EtcdLeaderKillAsync));
            outcomes.Add(await MeasureAsync($"etcd frozen {2 * LeaseTtl.TotalSeconds:0} s", EtcdFreezeAsync));
            outcomes.Add(await MeasureAsync("etcd member restart", EtcdMemberRestartAsync));
        }, TimeSpan.Zero, clients: 1, ct);
        await stop.CancelAsync();
        await ssh;
        var (leaked, lost, converged) = await LeaksAsync();
        return new ChaosOutcome(outcomes, leaked, lost, converged);
    }

    /// <summary>Injects a fault (the task ends when the injection does), then waits until the platform is whole.</summary>
    private async Task<FaultOutcome> MeasureAsync(string name, Func<Task<string>> inject)
    {
        var load = _load!;
        var (before, sshOk, sshFailed) = (load.Counts, Interlocked.Read(ref _sshOk), Interlocked.Read(ref _sshFailed));
        log($"--- fault: {name}");
        string note;
        try
        {
            note = await inject();
        }
        finally
        {
            load.StaleAddresses = [];
        }
        var clock = Stopwatch.StartNew();
        var recovered = await WaitWholeAsync(name) ? clock.Elapsed.TotalSeconds : -1;
        await Task.Delay(2000); // what fails just after looks whole still belongs to this fault
        var outcome = new FaultOutcome(name, load.Counts.Since(before), Interlocked.Read(ref _sshOk) - sshOk,
            Interlocked.Read(ref _sshFailed) - sshFailed, recovered, note);
        log(outcome.ToString());
        lock (load.Failures)
        {
            foreach (var f in load.Failures) log("  " + f);
            load.Failures.Clear();
        }
        return outcome;
    }

    // --- the faults: each returns a note for the report

    /// <summary>A hello instance's process is SIGKILLed (a crash): its agent reports it, DNS and the LB drop it.</summary>
    private async Task<string> ContainerCrashAsync()
    {
        var victim = (await dev.PsAsync("hello")).First(w => w.Live);
        _load!.StaleAddresses = [IPAddress.Parse(victim.Address)];
        var inspected = await dev.DockerAsync(victim.Node, "inspect", "-f", "{{.State.Pid}}", victim.Name);
        var pid = int.Parse(inspected.Trim(), CultureInfo.InvariantCulture);
        Process.GetProcessById(pid).Kill(); // SIGKILL from outside: a crash, not a docker stop
        await Eventually(async () => !(await DigAsync()).Contains(victim.Address), "the crashed instance out of DNS");
        var text = await dev.EruAsync("start", victim.Name); // what an operator (or a restart policy) does
        return $"{victim.Name} crashed; started again: {text.Trim()}";
    }

    /// <summary>A hello instance stops answering for 5 s (docker pause: connections open, nothing answers).</summary>
    private async Task<string> BackendHangsAsync()
    {
        var victim = (await dev.PsAsync("hello")).First(w => w.Live);
        await dev.DockerAsync(victim.Node, "pause", victim.Name);
        try
        {
            await Task.Delay(5000);
        }
        finally
        {
            await dev.DockerAsync(victim.Node, "unpause", victim.Name);
        }
        return $"{victim.Name} paused";
    }

    /// <summary>h3's agent is SIGKILLed; eru dev starts it again, and it takes over its node's keys.</summary>
    private async Task<string> AgentKillAsync()
    {
        var pid = dev.AgentPid(3);
        Process.GetProcessById(pid).Kill();
        await Eventually(() => Task.FromResult(SafePid(() => dev.AgentPid(3)) is { } p && p != pid), "h3's agent started again");
        return $"agent pid {pid} killed";
    }

    /// <summary>h3's dockerd stops (SIGTERM: its containers stop with it) and is started again by eru dev.</summary>
    private async Task<string> DockerdRestartAsync()
    {
        var onH3 = (await dev.PsAsync("hello")).Where(w => w.Node == "h3").ToList();
        _load!.StaleAddresses = [.. onH3.Select(w => IPAddress.Parse(w.Address))];
        var pid = DockerdPid(3);
        Posix.Terminate(pid);
        await Eventually(() => Task.FromResult(SafePid(() => DockerdPid(3)) is { } p && p != pid), "h3's dockerd started again");
        // Its containers stopped with it (no restart policy on hello): started again, as an operator would.
        var text = onH3.Count > 0 ? await dev.EruAsync(["start", .. onH3.Select(w => w.Name)]) : "";
        return $"dockerd pid {pid} stopped; {onH3.Count} instances on h3 started again {text.Trim()}";
    }

    /// <summary>Core is SIGKILLed while it creates three instances; eru dev starts it again and it finishes or undoes the deploy.</summary>
    private async Task<string> CoreKillMidDeployAsync()
    {
        var deploy = dev.EruExitAsync("deploy", "examples/hello.yaml", "--pod", "dev", "--count", "3", "--memory", "32M",
            "--network", "eru-mv", "--tag", "chaos", "--env", "VERSION=chaos");
        await Task.Delay(1500);
        var pid = CorePid();
        Process.GetProcessById(pid).Kill();
        var (code, output) = await deploy;
        await Eventually(async () => (await dev.EruExitAsync("node", "ls")).Code == 0, "Core answers again");
        var first = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
        return $"Core pid {pid} killed; the deploy in flight exited {code}: {first}";
    }

    /// <summary>The etcd leader is SIGKILLed: a new one is elected; eru dev starts the member again.</summary>
    private async Task<string> EtcdLeaderKillAsync()
    {
        var urls = dev.EtcdEndpoints.Split(',');
        var leader = await EtcdCluster.LeaderAsync(urls);
        if (leader < 0) return "no leader found: skipped";
        var pid = dev.EtcdPid(leader + 1);
        Process.GetProcessById(pid).Kill();
        // A leader that answers (the one named is asked too: eru dev may have started the killed member again, and
        // it may win the election; until it runs, naming it does not count).
        await Eventually(async () => await EtcdCluster.LeaderAsync(urls) >= 0, "a leader again");
        return $"leader eru{leader + 1} (pid {pid}) killed";
    }

    /// <summary>Every member frozen (SIGSTOP) for twice the lease TTL: on their return every lease expires at once.</summary>
    private async Task<string> EtcdFreezeAsync()
    {
        var pids = Enumerable.Range(1, dev.EtcdEndpoints.Split(',').Length).Select(dev.EtcdPid).ToList();
        foreach (var pid in pids) Posix.Freeze(pid);
        try
        {
            await Task.Delay(2 * LeaseTtl);
        }
        finally
        {
            foreach (var pid in pids) Posix.Resume(pid);
        }
        return $"{pids.Count} members frozen";
    }

    /// <summary>A member that is not the leader is stopped (SIGTERM) and started again by eru dev.</summary>
    private async Task<string> EtcdMemberRestartAsync()
    {
        var urls = dev.EtcdEndpoints.Split(',');
        var leader = await EtcdCluster.LeaderAsync(urls);
        var member = leader == 0 ? 2 : 1;
        var pid = dev.EtcdPid(member);
        Posix.Terminate(pid);
        await Eventually(() => Task.FromResult(SafePid(() => dev.EtcdPid(member)) is { } p && p != pid), $"eru{member} started again");
        return $"eru{member} (pid {pid}) restarted";
    }

    // --- what "whole" means, and the checks after the run

    /// <summary>Whole: every etcd member healthy, Core answering, every hello record live and DNS naming exactly those.</summary>
    private async Task<bool> WaitWholeAsync(string what)
    {
        var deadline = DateTime.UtcNow + RecoverLimit;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (await EtcdHealthyAsync() && (await dev.EruExitAsync("node", "ls")).Code == 0
                    && await dev.PsAsync("hello") is { Count: > 0 } hello && hello.All(w => w.Live)
                    && (await DigAsync()).Order().SequenceEqual(hello.Select(w => w.Address).Order()))
                    return true;
            }
            catch (Exception ex) when (ex is CommandFailedException or JsonException or TimeoutException or HttpRequestException)
            {
                // a part is still away: look again
            }
            await Task.Delay(500);
        }
        log($"not whole within {RecoverLimit.TotalSeconds:0} s: {what}");
        return false;
    }

    /// <summary>
    /// Containers of this cluster (label eru.registry) that no record knows, and records whose container is gone,
    /// looked at until both are zero (Core finishes or undoes what a crash interrupted) or the limit passes.
    /// </summary>
    private async Task<(int Leaked, int Lost, double Seconds)> LeaksAsync()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var records = await RecordsAsync();
            var containers = new HashSet<string>();
            foreach (var node in dev.Nodes.Keys)
            {
                var ids = await dev.DockerAsync(node, "ps", "-a", "--no-trunc", "--filter", "label=eru.registry", "--format", "{{.ID}}");
                containers.UnionWith(ids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            }
            var leaked = containers.Count(c => !records.Contains(c));
            var lost = records.Count(r => !containers.Contains(r));
            if ((leaked == 0 && lost == 0) || clock.Elapsed > RecoverLimit)
            {
                log($"after the run: {leaked} containers leaked, {lost} records lost "
                    + $"({containers.Count} containers, {records.Count} records)");
                return (leaked, lost, clock.Elapsed.TotalSeconds);
            }
            await Task.Delay(1000);
        }
    }

    private async Task<HashSet<string>> RecordsAsync() => [.. (await dev.PsAsync()).Select(w => w.Id)];

    private Task<List<string>> DigAsync() => dev.DigAsync("web.hello.eru");

    private async Task<bool> EtcdHealthyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        foreach (var url in dev.EtcdEndpoints.Split(','))
        {
            try
            {
                var body = await http.GetStringAsync(new Uri(url + "/health"));
                if (!body.Contains("\"health\":\"true\"", StringComparison.Ordinal)) return false;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>SSH commands through the gateway, one after the other, into any hello instance.</summary>
    private async Task SshLoopAsync(CancellationToken stop)
    {
        var ssh = Tools.Find("ssh", "openssh-client");
        for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
        {
            try
            {
                await Shell.RunAsync(ssh,
                [
                    "-p", dev.SshPort.ToString(CultureInfo.InvariantCulture), "-i", dev.KeyFile, "-o", "BatchMode=yes",
                    "-o", $"UserKnownHostsFile={Path.Combine(dev.StateDir, "ssh-known-hosts")}", "-o", "ConnectTimeout=5",
                    $"{dev.SshUser}~web.hello@127.0.0.1", "true",
                ], timeout: TimeSpan.FromSeconds(15));
                Interlocked.Increment(ref _sshOk);
            }
            catch (Exception ex) when (ex is CommandFailedException or TimeoutException)
            {
                if (!stop.IsCancellationRequested)
                {
                    Interlocked.Increment(ref _sshFailed);
                    log($"  ssh failed: {ex.Message.Split('\n')[0]}");
                }
            }
            try
            {
                await Task.Delay(300, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private int CorePid() => dev.Pid("core.pid");

    private int DockerdPid(int host) => dev.Pid($"dockerd-h{host}.pid");

    private static int? SafePid(Func<int> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is IOException or FormatException)
        {
            return null;
        }
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + RecoverLimit;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"chaos: {what} did not happen within {RecoverLimit.TotalSeconds:0} s");
            await Task.Delay(250);
        }
    }
}
