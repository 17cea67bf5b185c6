using System.Globalization;
using System.Net;
using System.Text.Json;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Scenario.Tests;

/// <summary><c>./eru dev --network routed --hosts 2</c>: containers on a bridge per host, reached only by BGP-learned routes.</summary>
public sealed class RoutedDevCluster : DevCluster
{
    protected override string[] ClusterArgs => ["--hosts", "2", "--network", "routed"];
}

/// <summary>
/// The platform on a routed network, as Calico runs one: each host owns a block of the pool Core recorded, its
/// containers' addresses come from it, and bird spreads the blocks over BGP; a killed speaker is started again and its
/// routes come back. Through public interfaces only: etcdctl for the pool, the eru CLI, dig, HTTP through the LB, ssh
/// through the gateway, birdc and ip for the routes.
/// </summary>
[Collection(DevClusters.Name)]
public sealed class RoutedScenarioTests(RoutedDevCluster cluster, ITestOutputHelper output) : IClassFixture<RoutedDevCluster>
{
    private const string Network = "eru-routed";

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task Containers_on_routed_blocks_deploy_resolve_balance_enter_and_reach_each_other()
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
        var dev = cluster.Dev;
        // 1. The demo is live: hello v1 x3 and v2 x1, spread over both hosts.
        var ps = await Eventually.Value(async () => await dev.PsAsync("hello") is { } p && p.Count(w => w.Live) == 4 ? p : null,
            TimeSpan.FromSeconds(60), "4 live hello instances");
        Assert.Equal(["h1", "h2"], ps.Select(w => w.Node).Distinct().Order(StringComparer.Ordinal));

        // 2. Core recorded the pool and gave each host a block; each instance's address lies in its host's block.
        var blocks = await BlocksAsync();
        output.WriteLine("blocks: " + string.Join(", ", blocks.Select(b => $"{b.Key} {b.Value}")));
        Assert.Equal(["h1", "h2"], blocks.Keys.Order(StringComparer.Ordinal));
        foreach (var w in ps)
            Assert.True(blocks[w.Node].Contains(IPAddress.Parse(w.Address)), $"{w.Name} at {w.Address} is outside {w.Node}'s block");

        // 3. Every BGP session is up: each host with the root namespace's speaker (a route reflector).
        await Eventually.True(async () => Bird.Established(await BirdAsync("edge", "show", "protocols")) == 2
            && Bird.Established(await BirdAsync("h1", "show", "protocols")) == 1
            && Bird.Established(await BirdAsync("h2", "show", "protocols")) == 1,
            TimeSpan.FromSeconds(30), "every BGP session established");

        // 4. eru-dns answers every instance; eru-lb reaches every one of them (the canary header reaches v2).
        await Eventually.True(async () => (await dev.DigAsync("web.hello.eru")).ToHashSet().SetEquals(ps.Select(w => w.Address)),
            TimeSpan.FromSeconds(30), "web.hello.eru answers all 4 addresses");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await Eventually.True(async () =>
        {
            seen.Add(Hostname(await GetAsync(canary: false)));
            seen.Add(Hostname(await GetAsync(canary: true)));
            return ps.All(w => seen.Contains(w.Id[..12]));
        }, TimeSpan.FromSeconds(60), "eru-lb reaches every instance");

        // 5. ssh into an instance on h1 through eru-ssh; from inside, fetch from one on h2 (host to host by routes).
        var (on1, on2) = (ps.First(w => w.Node == "h1"), ps.First(w => w.Node == "h2"));
        Assert.Equal(on1.Id[..12], (await dev.SshAsync(on1.Name, "hostname")).Trim());
        var fetched = await dev.SshAsync(on1.Name, $"wget -q -O - http://{on2.Address}/");
        Assert.Equal(on2.Id[..12], Hostname(fetched));

        // 6. A new instance on h2: its address is in h2's block, the block's route is on h1 and at the edge (learned by
        // BGP, via h2), and the instance answers h1's containers and the root namespace.
        Step("deploy", await dev.EruAsync("deploy", "examples/hello.yaml", "--pod", "dev", "--count", "1", "--memory", "32M",
            "--network", Network, "--node", "h2", "--tag", "v3", "--env", "VERSION=v3"));
        var added = await Eventually.Value(async () => (await dev.PsAsync("hello")).SingleOrDefault(w => w.Live && w.Tags.Contains("v3")),
            TimeSpan.FromSeconds(60), "the v3 instance is live");
        Assert.True(blocks["h2"].Contains(IPAddress.Parse(added.Address)), $"{added.Address} is outside h2's block {blocks["h2"]}");
        var h1Routes = await Shell.RunAsync(Tools.Find("ip", "iproute2"),
            ["-n", dev.Bgp["h1"].Netns!, "route", "show", "match", added.Address, "proto", "bird"]);
        Assert.StartsWith(blocks["h2"].ToString(), h1Routes.Trim(), StringComparison.Ordinal);
        Assert.Contains("[h2 ", await EdgeRouteAsync(added.Address), StringComparison.Ordinal);
        Assert.Equal(added.Id[..12], Hostname(await dev.SshAsync(on1.Name, $"wget -q -O - http://{added.Address}/")));
        Assert.Equal(added.Id[..12], Hostname(await Http.GetStringAsync(new Uri($"http://{added.Address}/"))));

        // 7. h2's BGP speaker is killed: eru dev starts it again, its sessions come back and so do the routes to h2.
        var pidFile = Path.Combine(Path.GetDirectoryName(dev.Bgp["h2"].Socket)!, "bird.pid");
        var killed = (await File.ReadAllTextAsync(pidFile)).Trim();
        System.Diagnostics.Process.GetProcessById(int.Parse(killed, CultureInfo.InvariantCulture)).Kill();
        await Eventually.True(async () => File.Exists(pidFile) && (await File.ReadAllTextAsync(pidFile)).Trim() is { Length: > 0 } pid
            && pid != killed && Bird.Established(await BirdAsync("edge", "show", "protocols")) == 2
            && (await EdgeRouteAsync(added.Address)).Contains("[h2 ", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), "h2's bird started again, its session and its block's route back at the edge");
        var again = await Eventually.Value(async () => await TryGetAsync($"http://{added.Address}/"), TimeSpan.FromSeconds(30),
            $"{added.Name} answers the root namespace again");
        Assert.Equal(added.Id[..12], Hostname(again));
    }

    private static async Task<string?> TryGetAsync(string url)
    {
        try
        {
            return await Http.GetStringAsync(new Uri(url));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null; // the route is not back yet
        }
    }

    /// <summary>The routed network's pool as Core recorded it (etcdctl, as an operator reads it): node → block.</summary>
    private async Task<Dictionary<string, IPNetwork>> BlocksAsync()
    {
        var dev = cluster.Dev;
        var json = await Shell.RunAsync(Tools.Find("etcdctl", "etcd-client"),
            ["--endpoints", dev.EtcdEndpoints, "get", $"{dev.Prefix}/ip-pools/{Network}", "--print-value-only"]);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(Network, doc.RootElement.GetProperty("network").GetString());
        return doc.RootElement.GetProperty("blocks").EnumerateObject()
            .ToDictionary(b => b.Name, b => IPNetwork.Parse(b.Value.GetString()!), StringComparer.Ordinal);
    }

    private Task<string> BirdAsync(string speaker, params string[] command) =>
        Shell.RunAsync(Tools.Find("birdc", "bird2"), ["-s", cluster.Dev.Bgp[speaker].Socket, .. command]);

    /// <summary>The edge's route for <paramref name="address"/> (birdc), or "" while it has none ("Network not found").</summary>
    private async Task<string> EdgeRouteAsync(string address)
    {
        try
        {
            return await BirdAsync("edge", "show", "route", "for", address);
        }
        catch (CommandFailedException ex) when (ex.Message.Contains("Network not found", StringComparison.Ordinal))
        {
            return "";
        }
    }

    private async Task<string> GetAsync(bool canary)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{cluster.Dev.LbPort}/");
        req.Headers.Host = "hello.eru.local";
        if (canary) req.Headers.Add("X-Canary", "1");
        using var resp = await Http.SendAsync(req);
        var body = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, $"GET hello.eru.local: {(int)resp.StatusCode} {body}");
        return body;
    }

    /// <summary>"hello from HOSTNAME (VERSION)" → HOSTNAME (Docker's: the container id's first 12 characters).</summary>
    private static string Hostname(string body) =>
        body.StartsWith("hello from ", StringComparison.Ordinal) ? body["hello from ".Length..].Split(' ')[0] : body;

    private void Step(string name, string text) => output.WriteLine($"--- {name}\n{text.Trim()}");
}
