using System.Diagnostics;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Scenario.Tests;

/// <summary>
/// The end-to-end scenario of the platform on 3 simulated hosts, through public interfaces only: the eru CLI,
/// DNS (dig), HTTP through the LB, ssh through the gateway, and docker for the faults. Each step asserts what
/// a user would see. Steps run in order in one test: each builds on the state the previous one left.
/// </summary>
[Collection(DevClusters.Name)]
public sealed class ScenarioTests(DevCluster cluster, ITestOutputHelper output) : IClassFixture<DevCluster>
{
    private const string Domain = "hello.eru.local";

    private static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        UseCookies = false, // each request carries the cookie it is given, nothing more
        PooledConnectionLifetime = TimeSpan.FromSeconds(30),
    }) { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task Deploy_resolve_balance_enter_survive_faults_replace_and_read_logs()
    {
        try
        {
            await RunAsync();
        }
        catch
        {
            output.WriteLine("./eru dev output (tail):\n" + cluster.Dev.Output);
            throw;
        }
    }

    private async Task RunAsync()
    {
        // 1. Deploy: eru dev deployed hello v1 x3 and v2 x1; one more v1 through the CLI.
        var deployed = await cluster.Dev.EruAsync("deploy", "examples/hello.yaml", "--pod", "dev", "--count", "1", "--memory", "32M",
            "--network", "eru-mv", "--tag", "v1", "--env", "VERSION=v1");
        Step("deploy", deployed);
        var ps = await EventuallyAsync(async () => await PsAsync() is { } p && p.Count(w => w.Live) == 5 ? p : null,
            "5 live hello instances in eru ps");
        Assert.Equal(3, ps.Select(w => w.Node).Distinct().Count()); // AUTO spreads over the 3 hosts
        var v2 = Assert.Single(ps, w => w.Tags.Contains("v2"));

        // 2. DNS answers every instance, and the tag subset.
        await EventuallyAsync(async () => SetEquals(await DigAsync("web.hello.eru"), ps.Select(w => w.Address)),
            "web.hello.eru answers all 5 addresses");
        Assert.Equal([v2.Address], await DigAsync("v2.web.hello.eru"));
        Assert.Equal(4, (await DigAsync("v1.web.hello.eru")).Count);

        // 2b. Dual stack: every instance has an IPv6 address of the rig's ULA prefix beside its IPv4 one; DNS answers AAAA
        // and ip6.arpa PTR, the LB and the gateway take clients over IPv6, and a backend of family ipv6 forwards over IPv6.
        Assert.All(ps, w => Assert.StartsWith("fd65:7275:", w.Address6, StringComparison.Ordinal));
        await EventuallyAsync(async () => SetEquals(await DigAsync("web.hello.eru", "AAAA"), ps.Select(w => w.Address6)),
            "web.hello.eru answers all 5 IPv6 addresses");
        Assert.Equal([v2.Address6], await DigAsync("v2.web.hello.eru", "AAAA"));
        Assert.Equal([$"{v2.Ident}.web.hello.eru."], await DigAsync(v2.Address6, "PTR", reverse: true));
        Assert.Contains("(v", await CurlAsync("-6", $"http://[::1]:{cluster.Dev.LbPort}/", Domain));
        var six = Path.Combine(cluster.Dev.StateDir, "hello6.json");
        await File.WriteAllTextAsync(six, """
            {"name":"hello6.eru.local","init":"web","nodes":{"web":{"type":"backend",
             "select":{"app":"hello","entrypoint":"web","port":"http","tags":["v2"],"family":"ipv6"}}}}
            """);
        Step("lb set hello6", await cluster.Dev.EruAsync("lb", "set", "hello6.eru.local", six));
        Assert.Contains("(v2)", await EventuallyAsync(async () =>
        {
            try
            {
                return await CurlAsync("-6", $"http://[::1]:{cluster.Dev.LbPort}/", "hello6.eru.local");
            }
            catch (CommandFailedException)
            {
                return null; // until eru-lb has the domain
            }
        }, "hello6.eru.local answers over IPv6", TimeSpan.FromSeconds(20)));
        Assert.Contains($"\"address\": \"{v2.Address6}\"", await cluster.Dev.EruAsync("lb", "explain", "hello6.eru.local"));
        var (code6, text6) = await SshAsync(v2.Name, "cat /www/index.html", at: "::1");
        Assert.Equal(0, code6);
        Assert.Contains("(v2)", text6);

        // 3. The LB: plain requests reach v1, the canary header reaches v2, the percent split is sticky per user.
        Assert.Contains("(v1)", await GetAsync());
        Assert.Contains("(v2)", await GetAsync(canary: true));
        var sides = new Dictionary<string, string>();
        for (var u = 0; u < 60; u++)
        {
            var first = Version(await GetAsync(cookie: $"uid=user{u}"));
            for (var again = 0; again < 2; again++) Assert.Equal(first, Version(await GetAsync(cookie: $"uid=user{u}")));
            sides[$"user{u}"] = first;
        }
        var canaryUsers = sides.Values.Count(v => v == "v2");
        output.WriteLine($"percent split: {canaryUsers} of 60 users on v2 (10% configured)");
        Assert.InRange(canaryUsers, 1, 18);

        // 3b. eru dev --acme: eru-lb got the demo domain's certificate from pebble by HTTP-01, and serves it over TLS.
        var https = await Shell.RunAsync(Tools.Find("curl", "curl"), ["-sS", "--fail", "--max-time", "10",
            "--cacert", Path.Combine(cluster.Dev.StateDir, "acme-root.pem"),
            "--resolve", $"{Domain}:{cluster.Dev.LbTlsPort}:127.0.0.1", $"https://{Domain}:{cluster.Dev.LbTlsPort}/"]);
        Assert.Contains("hello from", https);
        Assert.Contains("acme-hello.eru.local", await cluster.Dev.EruAsync("lb", "cert", "ls"));

        // 4. ssh into an instance: the command runs in that container, its exit code comes back.
        var target = ps.First(w => w.Tags.Contains("v1"));
        var (code, text) = await SshAsync(target.Name, "cat /www/index.html");
        Assert.Equal(0, code);
        Assert.Contains("(v1)", text);
        Assert.Equal(3, (await SshAsync("web.hello", "exit 3")).Code);
        Assert.NotEqual(0, (await SshAsync("nosuchapp", "true")).Code);

        // 5. Kill a container: DNS and the LB drop it within a health interval or two.
        var victim = ps.First(w => w.Tags.Contains("v1") && w.Node == "h1");
        var hostname = (await SshAsync(victim.Name, "hostname")).Text.Trim();
        await cluster.Dev.DockerAsync(victim.Node, "kill", victim.Name);
        var killedAt = Stopwatch.StartNew();
        await EventuallyAsync(async () => !(await DigAsync("web.hello.eru")).Contains(victim.Address), $"{victim.Name} gone from DNS",
            TimeSpan.FromSeconds(15));
        output.WriteLine($"killed container left DNS after {killedAt.ElapsedMilliseconds} ms");
        await EventuallyAsync(async () =>
        {
            for (var i = 0; i < 20; i++)
                if ((await GetAsync()).Contains(hostname, StringComparison.Ordinal)) return false;
            return true;
        }, $"LB stops sending to {victim.Name}", TimeSpan.FromSeconds(15));

        // 6. One host's agent hangs (SIGSTOP: eru dev restarts a dead agent, not a hung one): its instances vanish within
        // the lease TTL and the followers' grace (9 + 5 s), traffic goes on with no failure. It stays hung until the end.
        var h2 = (await PsAsync()).Where(w => w.Node == "h2" && w.Live).ToList();
        Assert.NotEmpty(h2);
        var hungAgent = cluster.Dev.AgentPid(2);
        Posix.Freeze(hungAgent);
        var agentKilledAt = Stopwatch.StartNew();
        await EventuallyAsync(async () =>
        {
            var answers = await DigAsync("web.hello.eru");
            return h2.All(w => !answers.Contains(w.Address));
        }, "h2's instances gone from DNS within the lease TTL and the grace", TimeSpan.FromSeconds(40));
        output.WriteLine($"hung agent's instances left DNS after {agentKilledAt.ElapsedMilliseconds} ms (lease TTL 9 s, grace 5 s)");
        await Task.Delay(1000); // the LB follows the same registry change
        var afterAgent = await LoadAsync(TimeSpan.FromSeconds(3), () => Task.CompletedTask);
        output.WriteLine($"after the agent hung: {afterAgent.Ok} requests, {afterAgent.Failed} failed");
        Assert.True(afterAgent.Ok > 50, $"only {afterAgent.Ok} requests went through");
        Assert.Equal(0, afterAgent.Failed);

        // 7. Rolling replace of the live v1 instances under load: not one failed request.
        var replace = await LoadAsync(TimeSpan.Zero, async () => Step("replace", await cluster.Dev.EruAsync("replace",
            "examples/hello.yaml", "--pod", "dev", "--memory", "32M", "--network", "eru-mv", "--tag", "v1", "--env", "VERSION=v1.1",
            "--only-tag", "v1", "--node", "h1", "--node", "h3")));
        output.WriteLine($"during the rolling replace: {replace.Ok} requests, {replace.Failed} failed");
        Assert.True(replace.Ok > 50, $"only {replace.Ok} requests went through");
        Assert.Equal(0, replace.Failed);
        for (var i = 0; i < 10; i++) Assert.Contains("(v1.1)", await GetAsync());

        // 8. eru logs shows lines from every live instance.
        var live = (await PsAsync()).Where(w => w.Live && w.Node != "h2").ToList();
        foreach (var _ in Enumerable.Range(0, 20)) await GetAsync();
        var logs = await EventuallyAsync(async () =>
        {
            var text = await cluster.Dev.EruAsync("logs", "hello", "--tail", "200");
            return live.All(w => text.Contains($"web.{w.Ident}@{w.Node}", StringComparison.Ordinal)) ? text : null;
        }, "eru logs has lines of every live instance", TimeSpan.FromSeconds(20));
        Assert.Contains("response:200", logs);

        // 9. A stateful app: its count lives in a named volume, which a replace on the same node hands on.
        Step("counter", await cluster.Dev.EruAsync("deploy", "examples/counter.yaml", "--pod", "dev", "--node", "h1", "--memory", "16M",
            "--network", "eru-mv"));
        var counter = await EventuallyAsync(async () => (await PsAsync("counter")).SingleOrDefault(w => w.Live), "the counter is live");
        Assert.Equal("1", await CountAsync(counter.Name));
        Step("replace counter", await cluster.Dev.EruAsync("replace", "examples/counter.yaml", "--pod", "dev", "--node", "h1",
            "--memory", "16M", "--network", "eru-mv", "--health-timeout", "60"));
        var successor = await EventuallyAsync(async () => (await PsAsync("counter")).SingleOrDefault(w => w.Live && w.Name != counter.Name),
            "the counter's successor is live");
        Assert.Equal("2", await CountAsync(successor.Name)); // started a second time on the same data

        // 10. A migration job: its output and its exit code come back, and it leaves nothing behind.
        var (jobCode, job) = await cluster.Dev.EruExitAsync("run", "examples/counter.yaml", "--pod", "dev", "--memory", "16M",
            "--network", "eru-mv", "--", "sh", "-c", "echo migrating to 42; exit 3");
        Step("job", job);
        Assert.Equal(3, jobCode);
        Assert.Contains("migrating to 42", job, StringComparison.Ordinal);
        Assert.Single(await PsAsync("counter"));

        // 11. The hung agent resumes: its lease is long gone, so it takes a new one and writes its node's state again.
        Posix.Resume(hungAgent);
        await EventuallyAsync(async () => (await PsAsync()).Where(w => w.Node == "h2").All(w => w.Live)
            && SetEquals(await DigAsync("web.hello.eru"), (await PsAsync()).Where(w => w.Live).Select(w => w.Address)),
            "h2's instances live again");

        // 12. Chaos under continuous DNS, HTTP and SSH: a crashed container, a hung backend, an agent killed, a dockerd
        // restarted, Core killed mid-deploy, the etcd leader killed, etcd frozen for twice the lease TTL, a member
        // restarted. Nothing fails; answers naming a dead container within its TTL are counted apart; nothing leaks.
        var chaos = await new ChaosRun(cluster.Dev, output.WriteLine).RunAsync();
        foreach (var f in chaos.Faults)
        {
            Assert.True(f.RecoverSeconds >= 0, $"not whole again after: {f}");
            Assert.True(f.Load.DnsOk > 0 && f.Load.HttpOk > 0, $"no load during: {f}");
            Assert.True(f.Load.DnsFailed == 0 && f.Load.HttpFailed == 0 && f.SshFailed == 0, $"failures during: {f}");
        }
        Assert.Equal(0, chaos.Leaked);
        Assert.Equal(0, chaos.Lost);
    }

    /// <summary>The counter's /data/count, copied out of its container with eru cp.</summary>
    private async Task<string> CountAsync(string workload)
    {
        var local = Path.Combine(cluster.Dev.StateDir, "count-" + workload);
        await cluster.Dev.EruAsync("cp", $"{workload}:/data/count", local);
        return (await File.ReadAllTextAsync(local)).Trim();
    }

    private void Step(string name, string text) => output.WriteLine($"--- {name}\n{text.Trim()}");

    private Task<List<DevWorkload>> PsAsync(string app = "hello") => cluster.Dev.PsAsync(app);

    private Task<List<string>> DigAsync(string name, string type = "A", bool reverse = false) =>
        cluster.Dev.DigAsync(name, type, reverse);

    /// <summary>curl (with <paramref name="family"/>: -4 or -6) for <paramref name="url"/> as <paramref name="host"/>: the body.</summary>
    private static Task<string> CurlAsync(string family, string url, string host) =>
        Shell.RunAsync(Tools.Find("curl", "curl"), [family, "-sS", "--fail", "--max-time", "10", "-H", $"Host: {host}", url]);

    private async Task<string> GetAsync(bool canary = false, string? cookie = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{cluster.Dev.LbPort}/");
        req.Headers.Host = Domain;
        if (canary) req.Headers.Add("X-Canary", "1");
        if (cookie is not null) req.Headers.Add("Cookie", cookie);
        using var resp = await Http.SendAsync(req);
        var body = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, $"GET {Domain}: {(int)resp.StatusCode} {body}");
        return body;
    }

    private static string Version(string body) =>
        body.Contains("(v2)", StringComparison.Ordinal) ? "v2" : body.Contains("(v1)", StringComparison.Ordinal) ? "v1" : body;

    /// <summary>Four clients request the domain while <paramref name="during"/> runs (and at least <paramref name="atLeast"/>).</summary>
    private Task<(int Ok, int Failed)> LoadAsync(TimeSpan atLeast, Func<Task> during) =>
        ParallelLoad.RunAsync(() => GetAsync(), during, atLeast, output.WriteLine);

    /// <summary>A command through the gateway into <paramref name="target"/>: its exit code and output (said in the log).</summary>
    private async Task<(int Code, string Text)> SshAsync(string target, string command, string at = "127.0.0.1")
    {
        var (code, text) = await cluster.Dev.SshExitAsync(target, command, at);
        output.WriteLine($"ssh {target} {command}: exit {code}");
        return (code, text);
    }

    private static bool SetEquals(IEnumerable<string> a, IEnumerable<string> b) => a.ToHashSet().SetEquals(b);

    private static Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null) =>
        Eventually.True(condition, timeout ?? TimeSpan.FromSeconds(60), what);

    private static Task<T> EventuallyAsync<T>(Func<Task<T?>> attempt, string what, TimeSpan? timeout = null) where T : class =>
        Eventually.Value(attempt, timeout ?? TimeSpan.FromSeconds(60), what);
}
