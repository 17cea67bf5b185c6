using System.Diagnostics;
using System.Net;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Scenario.Tests;

/// <summary><c>./eru dev --self-hosted --hosts 2</c>: eru-dns and eru-lb as EdgeEru workloads, two replicas each.</summary>
public sealed class SelfHostedCluster : DevCluster
{
    protected override string[] ClusterArgs => ["--hosts", "2", "--self-hosted"];
}

/// <summary>
/// The platform hosts its own edge: the replicas are workloads built from this checkout, they answer DNS and
/// HTTP, a killed replica and a rolling replace of eru-lb under load cost no request (clients that know both
/// replicas, as a resolver with two nameservers does, try the other one).
/// </summary>
[Collection(DevClusters.Name)]
public sealed class SelfHostedTests(SelfHostedCluster cluster, ITestOutputHelper output) : IClassFixture<SelfHostedCluster>
{
    private static readonly TimeSpan TryTimeout = TimeSpan.FromMilliseconds(300);

    [Fact]
    public Task The_edge_runs_as_workloads_loses_nothing_when_a_replica_dies_and_rolls_eru_lb_under_load() =>
        cluster.RunAsync(output, RunAsync);

    private async Task RunAsync()
    {
        // 1. Four live workloads of the app "edge", one eru-dns and one eru-lb per host, at the addresses printed.
        var edge = await Eventually.Value(async () => await EdgeAsync() is { Count: 4 } e && e.All(w => w.Live) ? e : null,
            TimeSpan.FromSeconds(60), "4 live edge replicas");
        Assert.Equal(2, edge.Count(w => w.Entrypoint == "dns"));
        Assert.Equal(["h1", "h2"], edge.Where(w => w.Entrypoint == "lb").Select(w => w.Node).Order());
        var dns = cluster.Dev.Edge.Where(e => e.Entrypoint == "dns").Select(e => e.Address).ToList();
        var lbs = cluster.Dev.Edge.Where(e => e.Entrypoint == "lb").Select(e => e.Address).ToList();
        Assert.Equal(edge.Where(w => w.Entrypoint == "dns").Select(w => w.Address).Order(), dns.Select(a => a.ToString()).Order());

        // 2. Each replica serves on its own: hello's names, and hello through the LB.
        foreach (var server in dns)
            await Eventually.True(async () => (await DigAsync(server, "web.hello.eru")).Count == 4, TimeSpan.FromSeconds(30),
                $"{server} answers hello");
        var load = new EdgeLoad(dns, lbs, "web.hello.eru", "hello.eru.local", TryTimeout);
        var warm = await load.RunAsync(() => Task.CompletedTask, TimeSpan.FromSeconds(2));
        output.WriteLine("warm-up: " + warm);
        Assert.Equal(0, warm.DnsFailed + warm.HttpFailed + warm.DnsFailedOver + warm.HttpFailedOver);

        // 3. One eru-dns and one eru-lb killed under load: every request is answered (by the other replica).
        var (deadDns, deadLb) =
            (edge.First(w => w.Entrypoint == "dns" && w.Node == "h1"), edge.First(w => w.Entrypoint == "lb" && w.Node == "h1"));
        var killed = await load.RunAsync(async () =>
        {
            await Task.Delay(1000);
            await cluster.Dev.DockerAsync("h1", "kill", deadDns.Name, deadLb.Name);
            await Task.Delay(3000);
        }, TimeSpan.FromSeconds(5));
        output.WriteLine("replicas killed: " + killed);
        foreach (var f in load.Failures) output.WriteLine("  " + f);
        Assert.True(killed.DnsOk > 100 && killed.HttpOk > 100, killed.ToString());
        Assert.Equal(0, killed.DnsFailed);
        Assert.Equal(0, killed.HttpFailed);
        // Docker may have restarted them already (restart: always); eru start brings back any that is not.
        output.WriteLine(await cluster.Dev.EruAsync("start", deadDns.Name, deadLb.Name));
        await Eventually.True(async () => (await EdgeAsync()).Count(w => w.Live) == 4, TimeSpan.FromSeconds(60),
            "the killed replicas back");

        // 4. A rolling replace of eru-lb itself, one replica at a time on its address, under load: nothing lost.
        load.Failures.Clear();
        var watch = Stopwatch.StartNew();
        var rolled = await load.RunAsync(async () => output.WriteLine(await cluster.Dev.EruAsync("replace",
            Path.Combine(cluster.Dev.StateDir, "edge.yaml"), "--entrypoint", "lb", "--pod", "dev", "--network", "eru-mv", "--keep-ip",
            "--memory", "128M", "--memory-limit", "256M", "--health-timeout", "90")), TimeSpan.FromSeconds(3));
        output.WriteLine($"eru-lb replaced in {watch.Elapsed.TotalSeconds:0.0} s under load: {rolled}");
        foreach (var f in load.Failures) output.WriteLine("  " + f);
        Assert.Equal(0, rolled.HttpFailed);
        Assert.Equal(0, rolled.DnsFailed);
        var after = await EdgeAsync();
        // The same addresses:
        Assert.Equal(lbs.Select(a => a.ToString()).Order(), after.Where(w => w.Entrypoint == "lb").Select(w => w.Address).Order());
        Assert.DoesNotContain(after, w => w.Name == deadLb.Name || edge.Any(e => e.Entrypoint == "lb" && e.Name == w.Name));
    }

    private Task<List<DevWorkload>> EdgeAsync() => cluster.Dev.PsAsync("edge");

    private static async Task<List<string>> DigAsync(IPAddress server, string name) =>
        (await Shell.RunAsync(Tools.Find("dig", "bind9-dnsutils"), [$"@{server}", name, "A", "+short", "+time=1", "+tries=2"]))
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

}

/// <summary>Whole dev clusters run one at a time: each is a rig of dockerds and every service on a small machine.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DevClusters
{
    public const string Name = "dev-clusters";
}
