using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Agent.Tests;

/// <summary>Status and health under the agent's lease, against a real dockerd and a real etcd.</summary>
[Collection(RigCollection.Name)]
public sealed class StatusTests(RigFixture rig, EtcdFixture etcd, ITestOutputHelper output)
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Healthy_after_the_configured_successes_and_unhealthy_after_the_configured_failures()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();
        var health = new HealthCheckSpec
        {
            Http = new HttpCheck { Port = "http", Path = "/" }, IntervalMs = 300, TimeoutMs = 500, HealthyAfter = 3, UnhealthyAfter = 3,
        };
        var id = (await scene.DeployAsync("health", AgentScene.Httpd, health)).Instances[0].WorkloadId!;

        // Every distinct status the registry shows, in order.
        var seen = new List<(bool Running, bool Healthy, string? Reason)>();
        async Task Watch(Func<WorkloadStatus, bool> until, string what)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (true)
            {
                if (await scene.StatusAsync(id) is { } s)
                {
                    var v = (s.Running, s.Healthy, s.Reason);
                    if (seen.Count == 0 || seen[^1] != v) seen.Add(v);
                    if (until(s)) return;
                }
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"waiting for {what}; seen: {string.Join(" → ", seen)}");
                await Task.Delay(30);
            }
        }
        await Watch(s => s.Healthy, "healthy");
        Assert.Equal((true, false, "starting"), seen[0]); // one success is not enough with healthy_after 3
        var checksWhenHealthy = Checks(await scene.MetricsAsync(), scene.Node, "ok");
        Assert.True(checksWhenHealthy >= 3, $"healthy after {checksWhenHealthy} successful checks");

        // Break the endpoint: 404 from now on.
        var failsBefore = Checks(await scene.MetricsAsync(), scene.Node, "fail"); // before: a check may fail while the exec returns
        await scene.Host.DockerAsync(["exec", id, "rm", "/www/index.html"]);
        await Watch(s => !s.Healthy, "unhealthy");
        var failsAfter = Checks(await scene.MetricsAsync(), scene.Node, "fail");
        Assert.True(failsAfter - failsBefore >= 3, $"unhealthy after {failsAfter - failsBefore} failed checks");
        var status = (await scene.StatusAsync(id))!;
        Assert.True(status.Running);
        Assert.Equal("http GET /: 404", status.Reason);
    }

    private static double Checks(string metrics, string node, string result) =>
        AgentScene.Series(metrics, "eru_agent_health_checks_total", ("node", node), ("result", result)) ?? 0;

    [Fact]
    public async Task A_killed_container_is_not_running_before_the_next_check_round()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        // A long reconcile interval: only the Docker event can make this fast.
        await scene.StartAgentAsync("--Agent:ReconcileInterval", "00:01:00", "--Agent:Interval", "00:00:05");
        var id = (await scene.DeployAsync("kill", AgentScene.Httpd)).Instances[0].WorkloadId!;
        await Eventually.True(() => scene.StatusAsync(id).Result is { Running: true, Healthy: true }, TimeSpan.FromSeconds(20),
            "running and healthy");

        var killed = DateTimeOffset.UtcNow;
        await scene.Host.DockerAsync(["kill", id]);
        await Eventually.True(() => scene.StatusAsync(id).Result is { Running: false }, TimeSpan.FromSeconds(10), "running=false");
        var status = (await scene.StatusAsync(id))!;
        Assert.False(status.Healthy);
        Assert.Equal("not running", status.Reason);
        // The agent's own clock: when it wrote running=false, measured from just before the kill. Rounds are 5 s
        // apart and reconciling 60 s: well under 5 s, only Docker's event explains it. (Not a speed test: the
        // benchmark measures that; a loaded machine must not fail this.)
        Assert.True(status.CheckedAt - killed < TimeSpan.FromSeconds(4),
            $"written {(status.CheckedAt - killed).TotalMilliseconds:F0} ms after the kill");
    }

    [Fact]
    public async Task A_SIGKILLed_agent_loses_its_keys_within_the_TTL_and_a_restarted_one_writes_them_again()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        var dll = Path.Combine(AppContext.BaseDirectory, "eru-agent.dll");
        var port = Ports.FreeTcp();
        var agent = ChildProcess.Start("dotnet", [dll, .. scene.AgentArgs(port), "--Logging:Format", "simple"],
            l => output.WriteLine("[agent] " + l));
        List<string> ids;
        await using (agent)
        {
            ids = (await scene.DeployAsync("crash", AgentScene.Httpd, count: 2)).Instances.Select(i => i.WorkloadId!).ToList();
            await Eventually.True(() => ids.All(id => scene.StatusAsync(id).Result is { Healthy: true }) && Heartbeat(scene) is not null,
                TimeSpan.FromSeconds(30), "the agent process reports both containers healthy");
            Assert.Equal($"http://127.0.0.1:{port}", Heartbeat(scene)!.AgentUrl);

            await agent.StopAsync(kill: true);
            var killed = DateTime.UtcNow;
            await Eventually.True(() => Heartbeat(scene) is null && ids.All(id => scene.StatusAsync(id).Result is null),
                Ttl + TimeSpan.FromSeconds(2), "node-status and every workload-status gone with the lease");
            output.WriteLine($"keys gone {(DateTime.UtcNow - killed).TotalMilliseconds:F0} ms after SIGKILL (TTL {Ttl.TotalSeconds} s)");
        }

        var again = ChildProcess.Start("dotnet", [dll, .. scene.AgentArgs(Ports.FreeTcp()), "--Logging:Format", "simple"],
            l => output.WriteLine("[agent 2] " + l));
        await using (again)
        {
            await Eventually.True(() => ids.All(id => scene.StatusAsync(id).Result is { Healthy: true }) && Heartbeat(scene) is not null,
                TimeSpan.FromSeconds(30), "statuses back from the restarted agent");
            await again.StopAsync(); // SIGTERM: a clean stop revokes the lease at once
            await Eventually.True(() => Heartbeat(scene) is null, TimeSpan.FromSeconds(1), "keys revoked on clean stop");
        }
    }

    [Fact]
    public async Task Docker_away_stops_the_heartbeat_and_its_return_resumes_it_with_a_reconcile()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        // The agent reaches dockerd through a relay the test can cut.
        await using var docker = new TcpProxy(new System.Net.Sockets.UnixDomainSocketEndPoint(scene.Host.SocketPath));
        await scene.StartAgentAsync("--Agent:Docker", $"tcp://127.0.0.1:{docker.Port}");
        var ids = (await scene.DeployAsync("away", AgentScene.Httpd, count: 2)).Instances.Select(i => i.WorkloadId!).ToList();
        await Eventually.True(() => ids.All(id => scene.StatusAsync(id).Result is { Healthy: true }), TimeSpan.FromSeconds(20),
            "both healthy");

        docker.Cut();
        await Eventually.True(() => Heartbeat(scene) is null, TimeSpan.FromSeconds(10), "the heartbeat gone while Docker does not answer");
        Assert.Equal(0, AgentScene.Series(await scene.MetricsAsync(), "eru_agent_docker_up", ("node", scene.Node)));
        await scene.Host.DockerAsync(["kill", ids[0]]); // an event the agent cannot see

        docker.Restore();
        await Eventually.True(() => Heartbeat(scene) is not null && scene.StatusAsync(ids[0]).Result is { Running: false }
                && scene.StatusAsync(ids[1]).Result is { Healthy: true },
            TimeSpan.FromSeconds(10), "heartbeat back and the missed death reconciled");
        Assert.Equal(1, AgentScene.Series(await scene.MetricsAsync(), "eru_agent_docker_up", ("node", scene.Node)));
    }

    private static NodeStatus? Heartbeat(AgentScene scene) => scene.Store.GetAsync(Kinds.NodeStatus, scene.Node).Result?.Value;

    [Fact]
    public async Task After_an_etcd_restart_statuses_are_back_within_one_TTL_with_what_changed_meanwhile()
    {
        await using var server = await EtcdServer.StartAsync();
        await using var scene = new AgentScene(rig, server.ClientUrl, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();
        var ids = (await scene.DeployAsync("etcd", AgentScene.Httpd, count: 2)).Instances.Select(i => i.WorkloadId!).ToList();
        await Eventually.True(() => ids.All(id => scene.StatusAsync(id).Result is { Healthy: true }), TimeSpan.FromSeconds(20),
            "both healthy");

        // etcd away for longer than the lease: the agent keeps watching Docker meanwhile.
        await server.StopAsync(kill: true);
        await scene.Host.DockerAsync(["kill", ids[0]]);
        await Task.Delay(Ttl * 2);
        var metrics = await scene.MetricsAsync();
        Assert.Equal(0, AgentScene.Series(metrics, "eru_agent_etcd_up", ("node", scene.Node)));

        await server.StartAsync();
        var back = DateTime.UtcNow;
        await Eventually.True(() =>
        {
            try
            {
                return Heartbeat(scene) is not null && scene.StatusAsync(ids[0]).Result is { Running: false }
                    && scene.StatusAsync(ids[1]).Result is { Healthy: true };
            }
            catch (AggregateException)
            {
                return false; // etcd still starting
            }
        }, Ttl + TimeSpan.FromSeconds(2), "heartbeat and both statuses (the killed one not running) after etcd is back");
        output.WriteLine($"statuses back {(DateTime.UtcNow - back).TotalMilliseconds:F0} ms after etcd started (TTL {Ttl.TotalSeconds} s)");

        // And they are under a live lease again: they stay past the old lease's lifetime.
        await Task.Delay(Ttl + TimeSpan.FromSeconds(1));
        Assert.NotNull(Heartbeat(scene));
        Assert.NotNull(await scene.StatusAsync(ids[1]));
    }
}
