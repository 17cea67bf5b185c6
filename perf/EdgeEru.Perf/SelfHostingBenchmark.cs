using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeEru.Dev;

namespace EdgeEru.Perf;

/// <summary>
/// self-hosting: <c>./eru dev --self-hosted --hosts 2</c> (eru-dns and eru-lb as EdgeEru workloads, two replicas
/// each), then under continuous DNS queries and HTTP requests through the replicas (clients that know both
/// replicas and try the other one when a try fails, as a resolver with two nameservers does):
/// an eru-dns and an eru-lb replica killed; a keep-ip rolling replace of eru-lb; and a rebuild of both images
/// from the binaries (no cache) with a rolling replace of the whole edge onto them. Reports failed requests
/// (target 0 everywhere), first tries that failed over, and the times. The anchor is the target itself:
/// a request lost is a request lost.
/// </summary>
internal static partial class SelfHostingBenchmark
{
    private static readonly TimeSpan TryTimeout = TimeSpan.FromMilliseconds(300);

    public static async Task<int> RunAsync(string[] args)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("perf self-hosting: simulated Docker hosts need root");
            return 2;
        }
        var root = RepoRoot();
        Console.Error.WriteLine("starting ./eru dev --self-hosted --hosts 2");
        var started = Stopwatch.StartNew();
        await using var dev = await EruDev.StartAsync(root, ["--hosts", "2", "--self-hosted"],
            line => Console.Error.WriteLine("  | " + line));
        var upS = started.Elapsed.TotalSeconds;
        var edgeS = dev.Lines.Select(l => EdgeUp().Match(l)).Where(m => m.Success)
            .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).FirstOrDefault();
        var dns = dev.Edge.Where(e => e.Entrypoint == "dns").Select(e => e.Address).ToList();
        var lbs = dev.Edge.Where(e => e.Entrypoint == "lb").Select(e => e.Address).ToList();
        if (dns.Count < 2 || lbs.Count < 2)
            throw new InvalidOperationException($"expected two replicas of each, eru dev printed:\n{dev.Output}");
        var load = new EdgeLoad(dns, lbs, "web.hello.eru", "hello.eru.local", TryTimeout);
        var edge = await EdgeAsync(dev);

        var steady = await load.RunAsync(() => Task.CompletedTask, TimeSpan.FromSeconds(5));
        Console.Error.WriteLine("steady: " + steady);

        // A replica of each killed (docker kill on its host): the others answer.
        var (deadDns, deadLb) =
            (edge.First(w => w.Entrypoint == "dns" && w.Node == "h1"), edge.First(w => w.Entrypoint == "lb" && w.Node == "h1"));
        var killed = await load.RunAsync(async () =>
        {
            await Task.Delay(1000);
            await dev.DockerAsync("h1", "kill", deadDns.Name, deadLb.Name);
            await Task.Delay(4000);
        }, TimeSpan.FromSeconds(6));
        Console.Error.WriteLine("killed: " + killed);
        await dev.EruAsync("start", deadDns.Name, deadLb.Name); // if Docker's restart policy has not already
        await WaitLiveAsync(dev, 4);

        // eru-lb rolled onto itself, one replica at a time on its address.
        var spec = Path.Combine(dev.StateDir, "edge.yaml");
        var watch = Stopwatch.StartNew();
        var replaced = await load.RunAsync(() => ReplaceAsync(dev, spec, "lb"), TimeSpan.FromSeconds(3));
        var replaceS = watch.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"eru-lb replaced in {replaceS:0.0} s: {replaced}");
        await WaitLiveAsync(dev, 4);

        // A rebuild of both images (no cache) and the whole edge rolled onto them.
        watch.Restart();
        var rebuilt = await load.RunAsync(async () =>
        {
            var next = await File.ReadAllTextAsync(spec);
            foreach (var (folder, name) in new[] { ("dns", "eru-dns"), ("lb", "eru-lb") })
            {
                var image = Regex.Match(next, $@"image: (\S+/edgeeru/{name}):(\S+)");
                var tag = $"{image.Groups[1].Value}:rebuilt-{DateTime.UtcNow:HHmmss}";
                await BuildAsync(dev, root, folder, name, tag);
                next = next.Replace(image.Value, "image: " + tag, StringComparison.Ordinal);
            }
            var rebuiltSpec = Path.Combine(dev.StateDir, "edge-rebuilt.yaml");
            await File.WriteAllTextAsync(rebuiltSpec, next);
            await ReplaceAsync(dev, rebuiltSpec, "dns");
            await ReplaceAsync(dev, rebuiltSpec, "lb");
        }, TimeSpan.FromSeconds(3));
        var rebuildS = watch.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"edge rebuilt and redeployed in {rebuildS:0.0} s: {rebuilt}");
        foreach (var f in load.Failures) Console.Error.WriteLine("  " + f);

        var failed = killed.DnsFailed + killed.HttpFailed + replaced.DnsFailed + replaced.HttpFailed
            + rebuilt.DnsFailed + rebuilt.HttpFailed;
        var result = new Dictionary<string, object>
        {
            ["dev_cluster_up_s"] = Stats.Round(upS, 1),
            ["edge_build_push_deploy_s"] = Stats.Round(edgeS, 1),
            ["steady_dns_qps"] = Stats.Round(steady.DnsOk / steady.Took.TotalSeconds, 0),
            ["steady_http_rps"] = Stats.Round(steady.HttpOk / steady.Took.TotalSeconds, 0),
            ["kill_dns_answered"] = killed.DnsOk,
            ["kill_dns_failed"] = killed.DnsFailed,
            ["kill_dns_failed_over"] = killed.DnsFailedOver,
            ["kill_http_ok"] = killed.HttpOk,
            ["kill_http_failed"] = killed.HttpFailed,
            ["kill_http_failed_over"] = killed.HttpFailedOver,
            ["replace_lb_s"] = Stats.Round(replaceS, 1),
            ["replace_lb_http_ok"] = replaced.HttpOk,
            ["replace_lb_http_failed"] = replaced.HttpFailed,
            ["replace_lb_http_failed_over"] = replaced.HttpFailedOver,
            ["replace_lb_dns_failed"] = replaced.DnsFailed,
            ["rebuild_redeploy_s"] = Stats.Round(rebuildS, 1),
            ["rebuild_http_ok"] = rebuilt.HttpOk,
            ["rebuild_http_failed"] = rebuilt.HttpFailed,
            ["rebuild_dns_answered"] = rebuilt.DnsOk,
            ["rebuild_dns_failed"] = rebuilt.DnsFailed,
            ["failed_requests"] = failed,
            ["targets_met"] = failed == 0,
        };
        Console.WriteLine("RESULT self-hosting " + JsonSerializer.Serialize(result));
        return 0;
    }

    private static Task<string> ReplaceAsync(EruDev dev, string spec, string entrypoint) =>
        dev.EruAsync("replace", spec, "--entrypoint", entrypoint, "--pod", "dev", "--network", "eru-mv", "--keep-ip",
            "--memory", "128M", "--memory-limit", "256M", "--health-timeout", "90");

    /// <summary>eru build of one edge image from the binaries ./eru built, as eru dev does it, without the cache.</summary>
    private static async Task BuildAsync(EruDev dev, string root, string folder, string name, string tag)
    {
        var context = Directory.CreateTempSubdirectory("eru-rebuild-").FullName;
        try
        {
            var app = Directory.CreateDirectory(Path.Combine(context, "app")).FullName;
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, ".build", folder), "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(app, Path.GetRelativePath(Path.Combine(root, ".build", folder), file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            await File.WriteAllTextAsync(Path.Combine(context, "Dockerfile"),
                $"FROM {RuntimeImage.Name}\nCOPY app/ /opt/{name}/\nENTRYPOINT [\"dotnet\", \"/opt/{name}/{name}.dll\"]\n");
            await dev.EruAsync("build", context, "--tag", tag, "--pod", "dev", "--node", "h1", "--network", "none", "--push", "--no-cache");
        }
        finally
        {
            Directory.Delete(context, recursive: true);
        }
    }

    private static Task<List<DevWorkload>> EdgeAsync(EruDev dev) => dev.PsAsync("edge");

    private static async Task WaitLiveAsync(EruDev dev, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while ((await EdgeAsync(dev)).Count(r => r.Live) < count)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the edge's {count} replicas were not live again within 90 s");
            await Task.Delay(500);
        }
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EdgeEru.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("EdgeEru.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"self-hosted edge built, pushed, deployed and live in ([0-9.]+) s")]
    private static partial Regex EdgeUp();
}
