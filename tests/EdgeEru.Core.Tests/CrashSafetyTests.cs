using System.Collections.Concurrent;
using EdgeEru.Agent;
using EdgeEru.Docker;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Crash safety, as a property: an eru-core process is killed (SIGKILL, through Core:FaultInjection:CrashAt) at a
/// random yield point of a deploy, a replace (stop-first with a volume, and keep-ip), a realloc, a remove or a
/// job, on real etcd and dockerd; another replica's reaper must then bring Docker and the registry back into
/// agreement: every record has its container, running; every container and volume of this registry has its
/// record; no intent is left. The seed and the cases are printed (ERU_CRASH_SEED repeats a run); six per run,
/// ERU_CRASH_CASES asks for more.
/// </summary>
[Collection(AppsRigCollection.Name)]
public sealed class CrashSafetyTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Token = "crash-token";
    private const long MiB = 1L << 20;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _agents = [];
    private readonly ConcurrentQueue<string> _log = new();
    private DockerRig _rig = null!;
    private WebApplication _survivor = null!;
    private string _prefix = "";
    private EtcdConnection _conn = null!;
    private RegistryStore _store = null!;
    private RegistryWatcher _watcher = null!;
    private string _survivorUrl = "";

    /// <summary>(operation, yield point): where a Core can die in the middle of something.</summary>
    private static readonly (string Op, string Point)[] Cases =
    [
        ("deploy", "created"), ("deploy", "before-commit"), ("remove", "removed-container"),
        ("replace-volume", "parked"), ("replace-volume", "created"), ("replace-volume", "successor-created"),
        ("replace-keep-ip", "parked"), ("replace-keep-ip", "successor-created"), ("replace-volume", "removed-container"),
        ("realloc", "realloc-committed"), ("realloc", "realloc-before-commit"), ("job", "job-started"),
    ];

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 2);
        _prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(_prefix));
        _store = new RegistryStore(_conn);
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        foreach (var h in _rig.Hosts) await _store.PutAsync(Kinds.Nodes, h.AsNode("dev", cpuCores: 2, memoryBytes: 1024 * MiB));
        var logs = LoggerFactory.Create(b => b.AddProvider(new XunitLoggerProvider(output)).SetMinimumLevel(LogLevel.Warning));
        _watcher = new RegistryWatcher(_conn, logs.CreateLogger<RegistryWatcher>());
        _watcher.Start();
        foreach (var h in _rig.Hosts)
        {
            var agent = new NodeAgent(_store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
                new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
                logs.CreateLogger<NodeAgent>());
            _agents.Add(Task.Run(() => agent.RunAsync(_stop.Token)));
        }
        // The survivor: another replica, reaping every half second with no grace (every operation here writes intents).
        _survivorUrl = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _survivor = CoreHost.Create([.. CoreArgs(_survivorUrl), "--Core:ReplicaId", "survivor", "--Core:ReapIntervalSeconds", "0.5",
            "--Core:ReapGraceSeconds", "0"], l => l.AddProvider(new QueueLogger(_log)).SetMinimumLevel(LogLevel.Warning));
        await _survivor.StartAsync();
        await Eventually.True(() => _rig.Hosts.All(h => _watcher.Current.IsNodeAlive($"h{h.Index}")), TimeSpan.FromSeconds(20),
            "nodes alive");
    }

    private string[] CoreArgs(string url) =>
        ["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", url, "--Core:Token", Token,
         "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Core:LeaseTtlSeconds", "2"];

    private static V1.Core.CoreClient Client(string url) => new(GrpcChannel.ForAddress(url).Intercept(m =>
    {
        m.Add("authorization", "Bearer " + Token);
        return m;
    }));

    private static V1.DeployRequest Spec(bool volume = false, string address = "") => new()
    {
        App = "crash", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 1, Nodes = { "h1" },
        Command = { "sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www" },
        Ports = { new V1.PublishedPort { Name = "http", Port = 80 } },
        Healthcheck = new V1.HealthCheck { Http = new V1.HttpCheck { Port = "http", Path = "/" }, IntervalMs = 300, TimeoutMs = 500 },
        Networks = { [DockerRig.Network] = address }, Volumes = { volume ? [new V1.Volume { Source = "data", Target = "/data" }] : [] },
        Resources = new V1.Resources { MemoryRequestBytes = 32 * MiB, MemoryLimitBytes = 32 * MiB },
    };

    [Fact]
    public async Task A_core_killed_at_any_yield_point_leaves_docker_and_the_registry_agreeing_once_another_replica_reaps()
    {
        var seed = Environment.GetEnvironmentVariable("ERU_CRASH_SEED") is { } s
            ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        // Six random cases per run keep the suite short; every run picks others (ERU_CRASH_CASES=12 runs each once).
        var count = int.TryParse(Environment.GetEnvironmentVariable("ERU_CRASH_CASES"), out var n) ? n : 6;
        var random = new Random(seed);
        var cases = Cases.OrderBy(_ => random.Next()).Select(c => (c.Op, c.Point, Nth: 1))
            .Concat(Enumerable.Range(0, Math.Max(0, count - Cases.Length)).Select(_ => Cases[random.Next(Cases.Length)])
                .Select(c => (c.Op, c.Point, Nth: random.Next(1, 3))))
            .Take(count).ToList();
        output.WriteLine($"seed {seed} (ERU_CRASH_SEED), {cases.Count} cases");
        var survivor = Client(_survivorUrl);
        foreach (var (op, point, nth) in cases)
        {
            output.WriteLine($"--- {op}, crash at {point} #{nth}");
            await RunCaseAsync(survivor, op, $"{point}:{nth}");
            await Eventually.True(async () => await DisagreementAsync() is null, TimeSpan.FromSeconds(30), $"{op} at {point}: agreement " +
                $"({await DisagreementAsync()})");
            await CleanAsync(survivor);
        }
        Assert.DoesNotContain(_log, l =>
            l.Contains("Exception", StringComparison.Ordinal) && !l.Contains("reaper", StringComparison.Ordinal));
    }

    /// <summary>Sets up what the operation needs through the survivor, then runs it through a Core that crashes at the point.</summary>
    private async Task RunCaseAsync(V1.Core.CoreClient survivor, string op, string crashAt)
    {
        var h1 = _rig.Hosts[0];
        var fixedAddress = h1.ContainerAddress(700);
        if (op is "remove" or "replace-volume" or "realloc")
            await Drain(survivor.Deploy(Spec(volume: op == "replace-volume")));
        if (op == "replace-keep-ip") await Drain(survivor.Deploy(Spec(address: fixedAddress)));
        if (op != "deploy" && op != "job")
            await Eventually.True(async () =>
                    (await survivor.ListWorkloadsAsync(new V1.ListWorkloadsRequest { App = "crash" })).Workloads.All(w => w.Live),
                TimeSpan.FromSeconds(20), "the instance is live before the crash");
        var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        await using var doomed = ChildProcess.Start("dotnet", [CoreDll(), .. CoreArgs(url), "--Core:FaultInjection:CrashAt", crashAt],
            line => output.WriteLine("  doomed| " + line));
        var client = Client(url);
        await Eventually.True(async () =>
        {
            try
            {
                await client.ListPodsAsync(new V1.ListPodsRequest());
                return true;
            }
            catch (RpcException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), "the doomed core answers");
        try
        {
            switch (op)
            {
                case "deploy": await Drain(client.Deploy(Spec(volume: true))); break;
                case "remove": await Drain(client.Remove(new V1.RemoveRequest { Workloads = { await OneAsync() } })); break;
                case "realloc":
                    await Drain(client.Realloc(
                        new V1.ReallocRequest { Workloads = { "crash" }, MemoryRequestBytes = 48 * MiB, MemoryLimitBytes = 48 * MiB }));
                    break;
                case "replace-volume":
                    await Drain(client.Replace(new V1.ReplaceRequest { Request = Spec(volume: true), HealthTimeoutMs = 20_000 }));
                    break;
                case "replace-keep-ip":
                    await Drain(client.Replace(new V1.ReplaceRequest { Request = Spec(), KeepIp = true, HealthTimeoutMs = 20_000 }));
                    break;
                case "job":
                    var job = Spec(volume: true);
                    job.Command.Clear();
                    job.Command.Add(["sleep", "600"]);
                    await Drain(client.Run(new V1.RunRequest { Request = job }));
                    break;
            }
            output.WriteLine("  the operation finished without reaching its crash point");
        }
        catch (RpcException ex)
        {
            output.WriteLine($"  the call ended: {ex.StatusCode}");
        }
        await doomed.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private async Task<string> OneAsync() => (await _store.ListAsync(Kinds.Workloads)).Items.Single(w => w.Value.App == "crash").Value.Name;

    private static async Task Drain<T>(AsyncServerStreamingCall<T> call)
    {
        using (call)
            await foreach (var _ in call.ResponseStream.ReadAllAsync()) { }
    }

    /// <summary>Null when Docker and the registry agree; else what is wrong.</summary>
    private async Task<string?> DisagreementAsync()
    {
        var records = (await _store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).Where(w => w.App == "crash").ToList();
        var intents = (await _store.ListAsync(Kinds.Intents)).Items.Select(i => i.Value).ToList();
        if (intents.Count > 0) return $"intents left: {string.Join(", ", intents.Select(i => $"{i.Op} {i.Target} of {i.Core}"))}";
        var containers = (await RigDocker.ContainersAsync(_rig))
            .Where(c => c.Labels.GetValueOrDefault(DockerEngine.AppLabel) == "crash").ToList();
        var extraContainers = containers.Where(c => records.All(r => r.Id != c.Id)).Select(c => c.Name).ToList();
        if (extraContainers.Count > 0) return $"containers without a record: {string.Join(", ", extraContainers)}";
        var missing = records.Where(r => containers.All(c => c.Id != r.Id)).Select(r => r.Name).ToList();
        if (missing.Count > 0) return $"records without a container: {string.Join(", ", missing)}";
        var stopped = containers.Where(c => !c.Running).Select(c => c.Name).ToList();
        if (stopped.Count > 0) return $"containers not running: {string.Join(", ", stopped)}";
        var mounted = records.SelectMany(r => r.Volumes ?? []).Select(v => v.Source).ToHashSet();
        var volumes = new List<string>();
        foreach (var h in _rig.Hosts)
            volumes.AddRange((await h.DockerAsync(["volume", "ls", "-q", "--filter", $"label={DockerEngine.AppLabel}=crash"]))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var loose = volumes.Where(v => !mounted.Contains(v)).ToList();
        return loose.Count > 0 ? $"volumes nothing mounts: {string.Join(", ", loose)}" : null;
    }

    private async Task CleanAsync(V1.Core.CoreClient survivor)
    {
        var names = (await _store.ListAsync(Kinds.Workloads)).Items.Where(w => w.Value.App == "crash").Select(w => w.Value.Name).ToList();
        if (names.Count > 0) await Drain(survivor.Remove(new V1.RemoveRequest { Workloads = { names } }));
    }

    private static string CoreDll()
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        return Path.Combine(Repo.Root, "core", "EdgeEru.Core.Server", "bin", configuration, "net10.0", "eru-core.dll");
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var a in _agents)
            await a.ContinueWith(_ => { }, TaskScheduler.Default);
        if (_survivor is not null) await _survivor.DisposeAsync();
        if (_watcher is not null) await _watcher.DisposeAsync();
        _conn?.Dispose();
        if (_rig is not null) await _rig.DisposeAsync();
        foreach (var line in _log) output.WriteLine("survivor| " + line);
    }

    public void Dispose() => _stop.Dispose();

    private sealed class QueueLogger(ConcurrentQueue<string> lines) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(
            LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue(formatter(state, exception) + (exception is null ? "" : " " + exception));
        public void Dispose() { }
    }
}
