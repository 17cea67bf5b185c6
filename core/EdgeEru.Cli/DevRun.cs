using EdgeEru.Core.Deploy;
using EdgeEru.Dev;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>What <c>eru dev</c> was asked for (its flags).</summary>
internal sealed record DevSettings(string? EtcdUrl, int EtcdPort, int EtcdMembers, string StateDir, string Prefix,
    int DnsPort, int DnsHttpPort, int LbPort, int LbAdminPort, int LbHttpPort, int CorePort, int CoreHttpPort,
    int ConsolePort, int AgentHttpPort, int SshPort, int SshHttpPort, string SshUser, string? SshKey, string[] DockerHosts,
    string DockerNetwork, int Hosts, bool SelfHosted, RigNetwork Network, bool Acme = false, int LbTlsPort = 8443,
    string? Datacenter = null, string[]? FollowDcs = null)
{
    /// <summary>
    /// <c>--follow-dc NAME=http://HOST:PORT[/PREFIX]</c>: the datacenter, its etcd endpoint and registry prefix (the URL's path,
    /// else <paramref name="prefix"/>), or what is wrong with it.
    /// </summary>
    public static (string Name, string Endpoint, string Prefix, string? Problem) ParseFollow(string value, string prefix)
    {
        var eq = value.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0) return ("", "", "", "expected NAME=http://HOST:PORT[/PREFIX]");
        var name = value[..eq];
        if (!Names.IsLabel(name)) return (name, "", "", $"\"{name}\" is not a DNS label");
        if (!Uri.TryCreate(value[(eq + 1)..], UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            return (name, "", "", $"\"{value[(eq + 1)..]}\" is not an http(s) URL of an etcd");
        var path = url.AbsolutePath.TrimEnd('/');
        return (name, url.GetLeftPart(UriPartial.Authority), path.Length > 0 ? path : prefix, null);
    }

    /// <summary>The registry flags that make a follower (eru-dns, eru-lb) watch the <c>--follow-dc</c> datacenters.</summary>
    public string[] FollowFlags() => [.. (FollowDcs ?? []).Select((f, i) => (Follow: ParseFollow(f, Prefix), i)).SelectMany(x => new[]
    {
        $"--Registry:Datacenters:{x.i}:Name", x.Follow.Name, $"--Registry:Datacenters:{x.i}:Endpoints", x.Follow.Endpoint,
        $"--Registry:Datacenters:{x.i}:Prefix", x.Follow.Prefix,
    })];
}

/// <summary>
/// One run of <c>eru dev</c>: the components of a local cluster, each a step started in order (hosts, etcd, the
/// registry, the edge, Core, the SSH gateway, nodes and their agents, the demo app), each pushed on a stack that
/// stops them in reverse when the run ends. The steps share what earlier ones made (etcd's URL, the store, tokens).
/// </summary>
internal sealed class DevRun(DevSettings settings, ILoggerFactory logs) : IAsyncDisposable
{
    private readonly ILogger _log = logs.CreateLogger("eru.dev");
    private readonly string _stateDir = Directory.CreateDirectory(Path.GetFullPath(settings.StateDir)).FullName;
    private readonly StartedStack _started = new(logs.CreateLogger("eru.dev"));
    private readonly List<DevNode> _nodes = [];
    private DockerRig? _rig;
    private EtcdConnection? _conn;
    private RegistryWatcher? _watcher;
    private IDisposable? _summary;
    private string _etcdEndpoints = settings.EtcdUrl ?? "";
    private string _selfHostedEtcd = ""; // the members' URLs on the rig's bridge, where the edge's containers reach them
    private string[] _registryFlags = [];
    private string _lbToken = "", _coreToken = "", _agentToken = "";
    private IReadOnlyList<SelfHostedEdge.Replica> _edge = [];
    private Pebble? _acmeCa;

    private sealed record DevNode(string Name, string Endpoint, string Network);

    private RegistryStore Store => new(_conn ?? throw new InvalidOperationException("the registry is not open yet"));

    private RegistryWatcher Watcher => _watcher ?? throw new InvalidOperationException("the registry is not followed yet");

    /// <summary>Runs every step, then serves until Ctrl-C.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        CleanLeftovers();
        await StartHostsAsync(ct);
        await StartEtcdAsync(ct);
        await FollowRegistryAsync(ct);
        await StartEdgeProcessesAsync(ct);
        await StartCoreAsync(ct);
        await StartSshGatewayAsync(ct);
        await AddNodesAsync(ct);
        await StartAgentsAsync(ct);
        await StartSelfHostedEdgeAsync(ct);
        await DeployHelloAsync(ct);
        await AwaitDemoCertificateAsync(ct);
        DevBanner.Print(settings, _stateDir, clock.Elapsed, _etcdEndpoints, _edge, [.. _nodes.Select(n => (n.Name, n.Endpoint, n.Network))],
            _lbToken, _coreToken, dualStack: _rig is { Mode: RigNetwork.Macvlan } && !settings.SelfHosted,
            [.. BgpSpeakers().Select(s => (s.Name, s.Bird.Socket, s.Netns))]);
        await ServeUntilStoppedAsync(ct);
    }

    /// <summary>With --network routed: each BGP speaker, the edge's and the hosts', and its namespace (null: the root one).</summary>
    private List<(string Name, Bird Bird, string? Netns)> BgpSpeakers() => _rig?.EdgeBird is { } edge
        ? [("edge", edge, null), .. _rig.Hosts.Select(h => ($"h{h.Index}", h.Bird!, (string?)h.Name))]
        : [];

    /// <summary>Processes an earlier run left behind (it crashed, or was killed), found by their pid files.</summary>
    private void CleanLeftovers()
    {
        foreach (var (pidFile, marker) in PidFiles(_stateDir)) Leftovers.Clean(pidFile, marker, _log);
    }

    /// <summary>
    /// Simulated Docker hosts (network namespaces with their own dockerd). A self-hosted edge runs in containers
    /// that reach etcd through the rig's bridge, so the rig comes before etcd.
    /// </summary>
    private async Task StartHostsAsync(CancellationToken ct)
    {
        if (settings.Hosts > 0 && settings.DockerHosts.Length == 0 && Environment.IsPrivilegedProcess)
        {
            _log.LogInformation("starting {Hosts} simulated Docker hosts", settings.Hosts);
            _rig = _started.Push("simulated hosts", await DockerRig.StartAsync(settings.Hosts, 'd', network: settings.Network));
            foreach (var h in _rig.Hosts)
            {
                var pidFile = Path.Combine(_stateDir, $"dockerd-h{h.Index}.pid");
                await File.WriteAllTextAsync(pidFile, h.DockerdPid.ToString(), ct);
                var supervisor = new Supervisor($"dockerd of h{h.Index}", () => h.DockerdRunning, async _ =>
                {
                    await h.StartDockerdAsync();
                    await File.WriteAllTextAsync(pidFile, h.DockerdPid.ToString(), CancellationToken.None);
                }, _log, ct);
                _started.Push($"supervisor of dockerd h{h.Index}", supervisor);
            }
            // The BGP speakers, as calico-node keeps bird running: a dead one's routes are gone until it is back.
            foreach (var (name, bird, _) in BgpSpeakers())
                _started.Push($"supervisor of bird {name}", new Supervisor($"bird of {name}", () => bird.Running,
                    _ => bird.StartAgainAsync(), _log, ct));
        }
        else if (settings.Hosts > 0 && settings.DockerHosts.Length == 0)
            _log.LogWarning("simulated hosts need root (network namespaces); run ./eru dev as root, --docker-host, or --hosts 0");
        if (settings.Network == RigNetwork.Routed && _rig is null)
            throw new DevCommand.ServiceStartException("--network routed runs on simulated hosts: it needs root (namespaces, routes)");
        if (settings.SelfHosted && _rig is null)
            throw new DevCommand.ServiceStartException(
                "--self-hosted runs the edge on simulated hosts: it needs root and --hosts 2 or more");
    }

    /// <summary>etcd: one member, or a cluster (--etcd-members), on consecutive ports from --etcd-port; or the user's own.</summary>
    private async Task StartEtcdAsync(CancellationToken ct)
    {
        if (settings.EtcdUrl is not null) return;
        var dataDir = Path.Combine(_stateDir, "etcd");
        if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true); // the dev cluster starts clean
        var cluster = await EtcdCluster.StartAsync(settings.EtcdMembers, settings.EtcdPort, dataDir,
            settings.SelfHosted ? [_rig!.BridgeAddress] : [], logs.CreateLogger("etcd"), ct);
        for (var i = 0; i < cluster.Members.Count; i++)
        {
            var member = cluster.Members[i];
            var pidFile = EtcdPid(_stateDir, i + 1);
            _started.Push($"etcd {member.Name}", member, pidFile);
            await File.WriteAllTextAsync(pidFile, member.ProcessId.ToString(), ct);
            var supervisor = new Supervisor($"etcd {member.Name}", () => member.IsRunning, async restart =>
            {
                await member.StartAsync(restart);
                await File.WriteAllTextAsync(pidFile, member.ProcessId.ToString(), restart);
            }, _log, ct);
            _started.Push($"supervisor of etcd {member.Name}", supervisor);
        }
        _etcdEndpoints = cluster.Endpoints;
        _selfHostedEtcd = _rig is null ? "" : cluster.EndpointsOn(_rig.BridgeAddress);
    }

    /// <summary>The registry: the dev pod, and a watcher whose summary is logged as the cluster fills.</summary>
    private async Task FollowRegistryAsync(CancellationToken ct)
    {
        _conn = new EtcdConnection(new RegistryOptions { Endpoints = _etcdEndpoints, Prefix = settings.Prefix });
        await Store.CreateAsync(Kinds.Pods, new Pod { Name = "dev", Description = "local cluster of eru dev" }, ct: ct);
        _watcher = new RegistryWatcher(_conn, logs.CreateLogger<RegistryWatcher>());
        _summary = _watcher.Subscribe(new SnapshotSummary(_log).OnSnapshot);
        _watcher.Start();
        await _watcher.Ready.WaitAsync(TimeSpan.FromSeconds(30), ct);
        _registryFlags = ["--Registry:Endpoints", _etcdEndpoints, "--Registry:Prefix", settings.Prefix, "--Logging:Format", "simple"];
        // The balancer's admin token, and the demo domain's canary graph (503 until hello's workloads are live).
        _lbToken = await NewTokenFileAsync("lb.token", ct);
        await Store.PutAsync(Kinds.LbDomains, DevDemo.Domain(), ct: ct);
    }

    /// <summary>eru-dns and eru-lb as processes on loopback (with --self-hosted they are workloads, started later).</summary>
    private async Task StartEdgeProcessesAsync(CancellationToken ct)
    {
        if (settings.SelfHosted) return;
        string[] acmeFlags = [];
        if (settings.Acme)
        {
            // Pebble checks HTTP-01 at hello.eru.local:{lb port}, which its own resolver makes 127.0.0.1: eru-lb's plain port.
            _acmeCa = _started.Push("ACME CA (pebble)", await Pebble.StartAsync(settings.LbPort, ct: ct));
            await Store.PutAsync(Kinds.LbDomains, DevDemo.Domain() with
            {
                Acme = new LbAcme { Directory = _acmeCa.Directory, Email = $"{settings.SshUser}@eru.local" },
            }, ct: ct);
            acmeFlags = ["--Lb:Tls:Urls", $"https://127.0.0.1:{settings.LbTlsPort}", "--Lb:Acme:CaCertificates", _acmeCa.CaPath,
                "--Lb:Acme:CheckSeconds", "1", "--Lb:Acme:RetrySeconds", "5"];
        }
        await StartServiceAsync("dns", "eru-dns.dll", settings.DnsHttpPort,
        [
            .. _registryFlags, "--Dns:Listen", "127.0.0.1", "--Dns:Port", settings.DnsPort.ToString(),
            "--Http:Urls", $"http://127.0.0.1:{settings.DnsHttpPort}", .. ReverseZoneFlags(), .. settings.FollowFlags(),
        ], ct);
        await StartServiceAsync("lb", "eru-lb.dll", settings.LbHttpPort,
        [
            .. _registryFlags, "--Lb:Urls", $"http://127.0.0.1:{settings.LbPort};http://[::1]:{settings.LbPort}",
            "--Lb:AdminUrls", $"http://127.0.0.1:{settings.LbAdminPort}", "--Lb:AdminToken", _lbToken,
            "--Http:Urls", $"http://127.0.0.1:{settings.LbHttpPort}", .. acmeFlags, .. settings.FollowFlags(),
        ], ct);
    }

    /// <summary>PTR records for the simulated hosts' container addresses, both families.</summary>
    private string[] ReverseZoneFlags() =>
        _rig is null ? [] : _rig.Mode == RigNetwork.Routed ? ["--Dns:ReverseSubnets:0", _rig.Subnet]
            : ["--Dns:ReverseSubnets:0", _rig.Subnet, "--Dns:ReverseSubnets:1", _rig.Subnet6];

    /// <summary>
    /// Core's API, for ./eru pod|node|deploy|capacity|replace|rm (the token is read from .dev/core.token). Secrets are
    /// sealed with a key kept beside the state (made once); bind mounts are allowed only under .dev/binds.
    /// </summary>
    private async Task StartCoreAsync(CancellationToken ct)
    {
        _coreToken = await NewTokenFileAsync("core.token", ct);
        _agentToken = await NewTokenFileAsync("agent.token", ct); // Core relays the agents' logs with it
        var secretsKey = Path.Combine(_stateDir, "secrets.key");
        if (!File.Exists(secretsKey))
        {
            await File.WriteAllBytesAsync(secretsKey, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), ct);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(secretsKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        var bindRoot = Directory.CreateDirectory(Path.Combine(_stateDir, "binds")).FullName;
        await StartServiceAsync("core", "eru-core.dll", settings.CoreHttpPort,
        [
            .. _registryFlags, "--Core:SecretsKeyFile", secretsKey, "--Core:BindRoots", bindRoot,
            "--Core:Urls", $"http://127.0.0.1:{settings.CorePort}", "--Core:Token", _coreToken, "--Core:AgentToken", _agentToken,
            "--Core:AuditLog", Path.Combine(_stateDir, "core-audit.jsonl"),
            "--Core:ConsoleUrls", $"http://127.0.0.1:{settings.ConsolePort}",
            "--Core:SshAuditLog", Path.Combine(_stateDir, "ssh-audit.jsonl"), // the console shows SSH sessions from it
            .. settings.Datacenter is { } dc ? new[] { "--Core:Datacenter", dc } : [],
            "--Http:Urls", $"http://127.0.0.1:{settings.CoreHttpPort}",
            .. RoutedPoolFlags(),
        ], ct);
        if (_rig is { Mode: RigNetwork.Routed })
        {
            // Core records the pool as it starts; the demo's deploy (in this process) needs it recorded.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (await Store.GetAsync(Kinds.IpPools, DockerRig.RoutedNetwork, ct) is null)
            {
                if (DateTime.UtcNow > deadline)
                    throw new DevCommand.ServiceStartException($"core did not record the ip pool of {DockerRig.RoutedNetwork} within 30 s");
                await Task.Delay(100, ct);
            }
        }
    }

    /// <summary>With --network routed: the rig's pool for Core, cut into /26 blocks (one per host, Calico's default size).</summary>
    private string[] RoutedPoolFlags() => _rig is { Mode: RigNetwork.Routed } rig
        ?
        [
            $"--Core:IpPools:{DockerRig.RoutedNetwork}:Cidr", rig.RoutedPool, $"--Core:IpPools:{DockerRig.RoutedNetwork}:BlockSize", "26",
        ]
        : [];

    /// <summary>The SSH gateway, with a user holding this machine's own public keys (if any) for hello.</summary>
    private async Task StartSshGatewayAsync(CancellationToken ct)
    {
        var hostKeys = Path.Combine(_stateDir, "ssh-host-keys");
        await StartServiceAsync("ssh", "eru-ssh.dll", settings.SshHttpPort,
        [
            .. _registryFlags, "--Ssh:Listen", "127.0.0.1,::1", "--Ssh:Port", settings.SshPort.ToString(),
            "--Ssh:HostKeyDirectory", hostKeys, "--Ssh:AuditLog", Path.Combine(_stateDir, "ssh-audit.jsonl"),
            "--Http:Urls", $"http://127.0.0.1:{settings.SshHttpPort}",
        ], ct);
        // A known_hosts file for the gateway's host keys (made by it on first start), so the try-it line checks them.
        await File.WriteAllLinesAsync(Path.Combine(_stateDir, "ssh-known-hosts"), Directory.GetFiles(hostKeys, "*.pub")
            .Select(f => $"[127.0.0.1]:{settings.SshPort},[::1]:{settings.SshPort} {File.ReadAllText(f).Trim()}"), ct);
        var keys = await DevDemo.SshKeysAsync(settings.SshKey, _log, ct);
        var user = new SshUser { Name = settings.SshUser, Keys = keys, Apps = new() { ["hello"] = new SshAppAccess() } };
        await Store.PutAsync(Kinds.SshUsers, user, ct: ct);
    }

    /// <summary>The Docker hosts as nodes: engines the user brought (--docker-host), or the simulated ones.</summary>
    private async Task AddNodesAsync(CancellationToken ct)
    {
        for (var i = 0; i < settings.DockerHosts.Length; i++)
        {
            var endpoint = settings.DockerHosts[i];
            using var engine = new DockerEngine(new DockerEndpoint { Address = endpoint });
            var (cpus, memory, _) = await engine.InfoAsync(ct);
            await DockerRig.ImportImageAsync(endpoint);
            var name = $"e{i + 1}";
            await Store.PutAsync(Kinds.Nodes, new Node
            {
                Name = name, Pod = "dev", Endpoint = new DockerEndpoint { Address = endpoint },
                Capacity = new NodeCapacity { CpuCores = cpus, PiecesPerCore = 100, MemoryBytes = memory },
                Networks = [settings.DockerNetwork],
            }, ct: ct);
            _nodes.Add(new DevNode(name, endpoint, settings.DockerNetwork));
        }
        if (_rig is not { } rig) return;
        foreach (var h in rig.Hosts)
        {
            await Store.PutAsync(Kinds.Nodes, h.AsNode("dev", Environment.ProcessorCount, 2L << 30), ct: ct);
            _nodes.Add(new DevNode($"h{h.Index}", h.Endpoint, rig.ContainerNetwork));
        }
    }

    /// <summary>
    /// One eru-agent per host, in the root namespace: it reaches the host's dockerd by its socket and the
    /// containers through the rig's bridge, as an agent on a real host would. Done when every node has a heartbeat.
    /// </summary>
    private async Task StartAgentsAsync(CancellationToken ct)
    {
        if (_nodes.Count == 0) return;
        for (var i = 0; i < _nodes.Count; i++)
        {
            var (name, endpoint, _) = _nodes[i];
            var port = settings.AgentHttpPort + i;
            await StartServiceAsync("agent", "eru-agent.dll", port,
            [
                .. _registryFlags, "--Agent:Node", name, "--Agent:Docker", endpoint,
                "--Http:Urls", $"http://127.0.0.1:{port}", "--Http:Token", _agentToken,
                "--Logs:Sinks:0:Type", "file", "--Logs:Sinks:0:Path", Path.Combine(_stateDir, "logs", $"{name}.jsonl"),
                "--Logs:CursorFile", Path.Combine(_stateDir, "logs", $"{name}.cursors.json"),
            ], ct, $"agent {name}", AgentPid(_stateDir, i + 1));
        }
        while ((await Store.ListAsync(Kinds.NodeStatus, ct: ct)).Items.Count < _nodes.Count) await Task.Delay(200, ct);
    }

    /// <summary>With --self-hosted: eru-dns and eru-lb built from this checkout's binaries, two replicas each, as workloads.</summary>
    private async Task StartSelfHostedEdgeAsync(CancellationToken ct)
    {
        if (!settings.SelfHosted || _nodes.Count == 0) return;
        var edge = new SelfHostedEdge(_rig!, _selfHostedEtcd, settings.Prefix, _stateDir, $"http://127.0.0.1:{settings.CorePort}",
            _coreToken, logs.CreateLogger("eru.dev.edge"));
        _edge = await edge.StartAsync(_started, _lbToken, ct);
    }

    /// <summary>hello v1 ×3 and v2 ×1; ready means what the try-it block promises: they are live (DNS and LB serve them).</summary>
    private async Task DeployHelloAsync(CancellationToken ct)
    {
        if (_nodes.Count == 0) return;
        var deployer = new Deployer(Store, e => new DockerEngine(e), logs.CreateLogger<Deployer>(), Watcher);
        foreach (var (version, count) in new[] { ("v1", 3), ("v2", 1) })
        {
            var result = await deployer.DeployAsync(DevDemo.HelloSpec(version, count, _nodes[0].Network), ct);
            foreach (var i in result.Instances)
                _log.LogInformation("hello {Version}: {Name} on {Node} {Outcome}", version, i.Name, i.Node, i.Error ?? "created");
            if (result.Error is not null) _log.LogError("deploy hello {Version}: {Error}", version, result.Error);
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Watcher.Current.LiveCount < 4 + _edge.Count && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
    }

    /// <summary>
    /// With --acme: waits (a minute at most) for eru-lb to have the demo domain's certificate from pebble, and writes the root
    /// it chains to beside the state, for curl --cacert.
    /// </summary>
    private async Task AwaitDemoCertificateAsync(CancellationToken ct)
    {
        if (_acmeCa is null) return;
        var name = "acme-" + DevDemo.Domain().Name;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await Store.GetAsync(Kinds.LbCertificates, name, ct) is null)
        {
            if (DateTime.UtcNow > deadline)
            {
                _log.LogWarning("eru-lb has no certificate for {Domain} from pebble after 60 s (see eru lb cert ls); going on",
                    DevDemo.Domain().Name);
                break;
            }
            await Task.Delay(250, ct);
        }
        await File.WriteAllTextAsync(AcmeRootFile(_stateDir), await _acmeCa.IssuingRootPemAsync(ct), ct);
    }

    /// <summary>The root pebble's certificates chain to, for clients (eru dev --acme writes it at start).</summary>
    internal static string AcmeRootFile(string stateDir) => Path.Combine(stateDir, "acme-root.pem");

    /// <summary>
    /// Serves until Ctrl-C. Simulated hosts go away whole; engines the user brought stay, so our containers are
    /// taken off them, from the last snapshot and Docker alone (Ctrl-C reaches etcd and the services at once).
    /// </summary>
    private async Task ServeUntilStoppedAsync(CancellationToken ct)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, ct);
        }
        catch (OperationCanceledException) when (settings.DockerHosts.Length > 0)
        {
            var engines = _nodes.ToDictionary(n => n.Name, n => new DockerEngine(new DockerEndpoint { Address = n.Endpoint }));
            var ours = Watcher.Current.Workloads.Select(w => w.Record!).Where(r => r is not null && engines.ContainsKey(r.Node));
            await Task.WhenAll(ours.Select(async w =>
            {
                try
                {
                    await engines[w.Node].RemoveAsync(w.Id, TimeSpan.FromSeconds(2), CancellationToken.None);
                    _log.LogInformation("removed {Workload} from {Node}", w.Name, w.Node);
                }
                catch (Exception ex) when (ex is global::Docker.DotNet.DockerApiException or HttpRequestException or IOException
                    or TimeoutException)
                {
                    _log.LogWarning("could not remove {Workload} from {Node}: {Error}", w.Name, w.Node, ex.Message);
                }
            }));
            foreach (var e in engines.Values) e.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts one of our services (built by ./eru next to the CLI, in ../{name}), waits for its /healthz and puts it
    /// on the stack (its pid file, .dev/{name}.pid unless given, lets a later run clean up after a crash). From then
    /// on it is kept running: restarted with the same arguments when it dies.
    /// </summary>
    private async Task StartServiceAsync(string name, string dll, int httpPort, string[] args, CancellationToken ct,
        string? label = null, string? pidFile = null)
    {
        label ??= name;
        pidFile ??= Path.Combine(_stateDir, name + ".pid");
        var path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", name, dll));
        if (!File.Exists(path)) throw new DevCommand.ServiceStartException($"{name}: {path} is missing; ./eru builds it");
        ChildProcess Start() => ChildProcess.Start("dotnet", [path, .. args], line => Console.WriteLine($"[{label}] {line}"));
        var service = _started.Push(label, new ServiceProcess(label, Start, pidFile, httpPort), pidFile);
        await service.StartAsync(ct);
        service.Supervise(_log, ct);
    }

    /// <summary>A service process of the run, and once it served, a <see cref="Supervisor"/> starting it again when it dies.</summary>
    private sealed class ServiceProcess(string label, Func<ChildProcess> start, string pidFile, int httpPort) : IAsyncDisposable
    {
        private ChildProcess? _child;
        private Supervisor? _supervisor;

        public async Task StartAsync(CancellationToken ct)
        {
            if (_child is not null) await _child.DisposeAsync();
            _child = start();
            await File.WriteAllTextAsync(pidFile, _child.Id.ToString(), ct);
            await WaitHealthyAsync(label, _child, httpPort, ct);
        }

        public void Supervise(ILogger log, CancellationToken stopping) =>
            _supervisor = new Supervisor(label, () => _child is { HasExited: false }, StartAsync, log, stopping);

        public async ValueTask DisposeAsync()
        {
            if (_supervisor is not null) await _supervisor.DisposeAsync();
            if (_child is not null) await _child.DisposeAsync();
        }
    }

    private static async Task WaitHealthyAsync(string name, ChildProcess child, int httpPort, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (child.HasExited)
                throw new DevCommand.ServiceStartException($"{name} exited with code {child.ExitCode}:\n{child.OutputTail()}");
            try
            {
                using var resp = await http.GetAsync(new Uri($"http://127.0.0.1:{httpPort}/healthz"), ct);
                if (resp.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            if (DateTime.UtcNow > deadline)
                throw new DevCommand.ServiceStartException($"{name} did not become healthy within 60 s:\n{child.OutputTail()}");
            await Task.Delay(100, ct);
        }
    }

    private async Task<string> NewTokenFileAsync(string file, CancellationToken ct)
    {
        var token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        await File.WriteAllTextAsync(Path.Combine(_stateDir, file), token, ct);
        return token;
    }

    /// <summary>The pid files of what a run starts, and what each process's command line holds (leftovers of a crash).</summary>
    private static IEnumerable<(string PidFile, string Marker)> PidFiles(string stateDir) =>
    [
        .. Enumerable.Range(1, DockerRig.MaxHosts).Select(i => (AgentPid(stateDir, i), "eru-agent.dll")),
        (Path.Combine(stateDir, "dns.pid"), "eru-dns.dll"), (Path.Combine(stateDir, "lb.pid"), "eru-lb.dll"),
        (Path.Combine(stateDir, "core.pid"), "eru-core.dll"), (Path.Combine(stateDir, "ssh.pid"), "eru-ssh.dll"),
        .. Enumerable.Range(1, DevCommand.MaxEtcdMembers).Select(i => (EtcdPid(stateDir, i), "etcd")),
    ];

    private static string AgentPid(string stateDir, int host) => Path.Combine(stateDir, $"agent-h{host}.pid");

    /// <summary>etcd.pid for the first (or only) member, etcd-2.pid and on for the others.</summary>
    private static string EtcdPid(string stateDir, int member) => Path.Combine(stateDir, member == 1 ? "etcd.pid" : $"etcd-{member}.pid");

    public async ValueTask DisposeAsync()
    {
        _summary?.Dispose();
        if (_watcher is not null) await _watcher.DisposeAsync();
        await _started.DisposeAsync();
        _conn?.Dispose();
    }

    /// <summary>Logs what the registry holds whenever it changes, at most once a second.</summary>
    private sealed class SnapshotSummary(ILogger log)
    {
        private DateTime _last = DateTime.MinValue;
        private string _lastText = "";

        public void OnSnapshot(RegistrySnapshot s)
        {
            var text = $"{s.Pods.Count} pods, {s.Nodes.Count} nodes ({s.NodeStatuses.Count} alive), "
                + $"{s.Workloads.Count} workloads ({s.LiveCount} live), {s.Problems.Count} bad values";
            if (text == _lastText || DateTime.UtcNow - _last < TimeSpan.FromSeconds(1)) return;
            _last = DateTime.UtcNow;
            _lastText = text;
            log.LogInformation("registry at revision {Revision}: {Summary}", s.Revision, text);
        }
    }
}
