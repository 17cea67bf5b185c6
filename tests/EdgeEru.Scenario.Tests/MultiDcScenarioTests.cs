using System.Diagnostics;
using System.Net;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Scenario.Tests;

/// <summary>
/// Two datacenters on the rig (docs/multi-dc.md): two <c>./eru dev --network routed</c> clusters, each with its own etcd,
/// Core, agent, hosts (BGP speakers) and edge, with no shared L2 between them; dc1's eru-dns and eru-lb follow dc2's
/// registry read-only across a WAN link (a delaying relay: this kernel has no netem). Every hello instance of dc1 killed
/// under load: no failed request, DNS and the LB send to dc2; they come back when dc1's instances do; the link cut (a
/// partition) leaves each datacenter serving its own.
/// </summary>
[Collection(DevClusters.Name)]
public sealed class MultiDcScenarioTests(ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Domain = "multi.eru.local";
    private EruDev? _dc1, _dc2;
    private WanLink? _wan;

    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
    {
        Timeout = TimeSpan.FromSeconds(10),
    };

    public async Task InitializeAsync()
    {
        // Both on routed networks: dc1's edge reaches dc2's containers only by routes dc2's BGP speakers announce.
        _dc2 = await EruDev.StartAsync(Repo.Root, ["--hosts", "1", "--network", "routed", "--datacenter", "dc2"]);
        _wan = new WanLink(new IPEndPoint(IPAddress.Loopback, 0), new IPEndPoint(IPAddress.Loopback, _dc2.EtcdPort),
            TimeSpan.FromMilliseconds(5));
        _dc1 = await EruDev.StartAsync(Repo.Root,
            ["--hosts", "1", "--network", "routed", "--datacenter", "dc1",
                "--follow-dc", $"dc2=http://127.0.0.1:{_wan.EndPoint.Port}{_dc2.Prefix}"]);
    }

    public async Task DisposeAsync()
    {
        if (_dc1 is not null) await _dc1.DisposeAsync();
        _wan?.Dispose();
        if (_dc2 is not null) await _dc2.DisposeAsync();
    }

    public void Dispose() => _wan?.Dispose();

    [Fact]
    public async Task Dns_and_lb_fail_over_to_the_other_datacenter_come_back_and_a_partition_leaves_each_serving_its_own()
    {
        try
        {
            await RunAsync(_dc1!, _dc2!);
        }
        catch
        {
            output.WriteLine("dc1's ./eru dev (tail):\n" + _dc1!.Output + "\n\ndc2's ./eru dev (tail):\n" + _dc2!.Output);
            throw;
        }
    }

    private async Task RunAsync(EruDev dc1, EruDev dc2)
    {
        // 1. Each datacenter runs hello; dc1's DNS answers its own and, under dc2.eru, dc2's.
        var mine = await EventuallyAsync(async () => await dc1.PsAsync("hello") is { } p && p.Count(w => w.Live) == 4 ? p : null,
            "dc1's 4 hello instances live");
        var theirs = await EventuallyAsync(async () => await dc2.PsAsync("hello") is { } p && p.Count(w => w.Live) == 4 ? p : null,
            "dc2's 4 hello instances live");
        await EventuallyAsync(async () => SetEquals(await DigAsync(dc1, "web.hello.eru"), mine.Select(w => w.Address)),
            "dc1 answers web.hello.eru with its own instances");
        await EventuallyAsync(async () => SetEquals(await DigAsync(dc1, "web.hello.dc2.eru"), theirs.Select(w => w.Address)),
            "dc1 answers web.hello.dc2.eru with dc2's instances (followed read-only)");
        Assert.Empty(await DigAsync(dc2, "web.hello.dc1.eru")); // dc2 follows nobody

        // 2. A domain on dc1 whose backend may fail over to any other datacenter.
        var graph = Path.Combine(dc1.StateDir, "multi.json");
        await File.WriteAllTextAsync(graph, """
            {"name":"DOMAIN","init":"web","nodes":{"web":{"type":"backend",
             "select":{"app":"hello","entrypoint":"web","port":"http","datacenters":["local","any"]},
             "options":{"retries":2,"timeout_ms":3000}}}}
            """.Replace("DOMAIN", Domain, StringComparison.Ordinal));
        output.WriteLine(await dc1.EruAsync("lb", "set", Domain, graph));
        await EventuallyAsync(async () =>
            (await dc1.EruAsync("lb", "explain", Domain)).Contains(theirs[0].Address, StringComparison.Ordinal),
            "dc1's eru-lb knows dc2's instances");
        var hostsOf = (List<DevWorkload> ws) => ws.Select(w => w.Id[..12]).ToHashSet();
        Assert.Contains(Host(await GetAsync(dc1)), hostsOf(mine));

        // 3. Every hello instance of dc1 dies under load: not one request fails, they go to dc2, and so does DNS.
        var seen = new HashSet<string>();
        var load = await LoadAsync(dc1, TimeSpan.FromSeconds(6), seen, async () =>
        {
            foreach (var w in mine) await dc1.DockerAsync(w.Node, "kill", w.Name);
        });
        output.WriteLine($"dc1's instances killed: {load.Ok} requests, {load.Failed} failed, {_cut} cut mid-response by the kill; "
            + $"answered by {string.Join(", ", seen)}");
        Assert.Equal(0, load.Failed);
        // A response a killed instance had begun is cut: no proxy may send such a request again (nginx does not either).
        // At most one per client can be in that state at the kill; every other request is in the retry budget.
        Assert.InRange(_cut, 0, 4);
        Assert.True(load.Ok > 20, $"only {load.Ok} requests went through");
        Assert.Contains(seen, h => hostsOf(theirs).Contains(h));
        var killed = Stopwatch.StartNew();
        await EventuallyAsync(async () => SetEquals(await DigAsync(dc1, "web.hello.eru"), theirs.Select(w => w.Address)),
            "dc1's web.hello.eru answers dc2's instances", TimeSpan.FromSeconds(20));
        output.WriteLine($"dc1's DNS answered dc2's instances {killed.ElapsedMilliseconds} ms after the kill was seen by the LB");
        for (var i = 0; i < 10; i++) Assert.Contains(Host(await GetAsync(dc1)), hostsOf(theirs));

        // 4. dc1's instances start again: DNS and the LB come back to them (the LB once their ejection is over).
        foreach (var w in mine) await dc1.DockerAsync(w.Node, "start", w.Name);
        await EventuallyAsync(async () => SetEquals(await DigAsync(dc1, "web.hello.eru"), mine.Select(w => w.Address)),
            "dc1's web.hello.eru answers its own again");
        await EventuallyAsync(async () => hostsOf(mine).Contains(Host(await GetAsync(dc1))), "dc1's eru-lb sends to dc1 again");

        // 5. A partition: the link to dc2 cut. Each datacenter serves its own; dc1 keeps dc2's last answers.
        _wan!.Cut();
        try
        {
            await Task.Delay(3000);
            Assert.True(SetEquals(await DigAsync(dc1, "web.hello.eru"), mine.Select(w => w.Address)));
            Assert.True(SetEquals(await DigAsync(dc1, "web.hello.dc2.eru"), theirs.Select(w => w.Address)));
            Assert.True(SetEquals(await DigAsync(dc2, "web.hello.eru"), theirs.Select(w => w.Address)));
            var during = await LoadAsync(dc1, TimeSpan.FromSeconds(3), [], () => Task.CompletedTask);
            Assert.Equal(0, during.Failed);
            Assert.Contains("hello from", await GetAsync(dc2, "hello.eru.local"));
        }
        finally
        {
            _wan.Heal();
        }
    }

    private static string Host(string body) => body.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, _, var h, ..] ? h : body;

    private static Task<List<string>> DigAsync(EruDev dev, string name) => dev.DigAsync(name);

    private static async Task<string> GetAsync(EruDev dev, string host = Domain)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{dev.LbPort}/");
        req.Headers.Host = host;
        using var resp = await Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        string body;
        try
        {
            body = await resp.Content.ReadAsStringAsync();
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw new ResponseCutException($"GET {host}: {(int)resp.StatusCode}, then the body was cut: {ex.Message}");
        }
        Assert.True(resp.IsSuccessStatusCode, $"GET {host}: {(int)resp.StatusCode} {body}");
        return body.Trim();
    }

    /// <summary>The response had begun (its head relayed) when the body stopped: the instance answering it died.</summary>
    private sealed class ResponseCutException(string message) : Exception(message);

    private int _cut;

    /// <summary>Four clients ask the domain while <paramref name="during"/> runs; who answers goes in <paramref name="seen"/>.</summary>
    private Task<(int Ok, int Failed)> LoadAsync(EruDev dev, TimeSpan atLeast, HashSet<string> seen, Func<Task> during) =>
        ParallelLoad.RunAsync(async () =>
        {
            try
            {
                var host = Host(await GetAsync(dev));
                lock (seen) seen.Add(host);
            }
            catch (ResponseCutException ex)
            {
                Interlocked.Increment(ref _cut);
                output.WriteLine(ex.Message);
            }
        }, during, atLeast, output.WriteLine);

    private static bool SetEquals(IEnumerable<string> a, IEnumerable<string> b) => a.ToHashSet().SetEquals(b);

    private static Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null) =>
        Eventually.True(condition, timeout ?? TimeSpan.FromSeconds(60), what);

    private static Task<T> EventuallyAsync<T>(Func<Task<T?>> attempt, string what, TimeSpan? timeout = null) where T : class =>
        Eventually.Value(attempt, timeout ?? TimeSpan.FromSeconds(60), what);
}
