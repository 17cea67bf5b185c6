using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Agent.Tests;

/// <summary>Container metrics from the kernel's counters on the agent's /metrics.</summary>
[Collection(RigCollection.Name)]
public sealed class MetricsTests(RigFixture rig, EtcdFixture etcd, ITestOutputHelper output)
{
    [Fact]
    public async Task The_metrics_endpoint_reports_the_containers_memory()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        // Carbon: a plaintext listener that keeps every line.
        using var carbon = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        carbon.Start();
        var graphite = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _ = Task.Run(async () =>
        {
            using var c = await carbon.AcceptTcpClientAsync();
            using var reader = new StreamReader(c.GetStream());
            while (await reader.ReadLineAsync() is { } line) graphite.Enqueue(line);
        });
        await scene.StartAgentAsync("--Metrics:Graphite", $"127.0.0.1:{((System.Net.IPEndPoint)carbon.LocalEndpoint).Port}");
        // 8 MiB (2^23 characters) kept in a shell variable (sleep is not the last command, or the shell would exec it and let go).
        var deployed = await scene.DeployAsync("mem",
            ["sh", "-c", "x=a; i=0; while [ $i -lt 23 ]; do x=\"$x$x\"; i=$((i+1)); done; sleep 3600; echo done"], memoryLimit: 48L << 20);
        var id = deployed.Instances[0].WorkloadId!;
        var workload = (await scene.Store.GetAsync(EdgeEru.Registry.Kinds.Workloads, id))!.Value;
        (string, string)[] labels = [("node", scene.Node), ("app", "mem"), ("entrypoint", "web"), ("ident", workload.Ident)];

        double? memory = null;
        var last = "";
        try
        {
            await Eventually.True(async () =>
                (memory = AgentScene.Series(last = await scene.MetricsAsync(), "eru_container_memory_bytes", labels)) >= 8 << 20,
                TimeSpan.FromSeconds(60), "the container's memory (8 MiB or more) on /metrics");
        }
        catch (TimeoutException)
        {
            output.WriteLine(last);
            output.WriteLine(await scene.Host.DockerAsync(["exec", id, "cat", "/proc/1/status"]));
            throw;
        }
        var metrics = await scene.MetricsAsync();
        output.WriteLine($"memory {memory}");
        Assert.True(memory <= 48 << 20, $"memory {memory} above the limit");
        Assert.Equal(48 << 20, AgentScene.Series(metrics, "eru_container_memory_limit_bytes", labels));
        Assert.NotNull(AgentScene.Series(metrics, "eru_container_cpu_seconds_total", labels));
        Assert.NotNull(AgentScene.Series(metrics, "eru_container_network_receive_bytes_total", labels));
        Assert.True(AgentScene.Series(metrics, "eru_agent_container_samples_total", ("node", scene.Node), ("source", "cgroup")) >= 1,
            "sampled from cgroups");

        // The same values in graphite's plaintext protocol: "eru.{node}.{app}.{entrypoint}.{ident}.{metric} {value} {unix time}".
        var path = $"eru.{scene.Node}.mem.web.{workload.Ident}.memory_bytes ";
        await Eventually.True(() => graphite.Any(l => l.StartsWith(path, StringComparison.Ordinal)
                && double.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 8 << 20),
            TimeSpan.FromSeconds(10), "the memory at the carbon listener");
        var sample = graphite.First(l => l.StartsWith(path, StringComparison.Ordinal)).Split(' ');
        Assert.InRange(long.Parse(sample[2], System.Globalization.CultureInfo.InvariantCulture),
            DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
    }
}
