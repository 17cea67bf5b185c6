using System.CommandLine;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru dev</c>: a local cluster in the foreground. Today: etcd and the registry; each component
/// joins as it lands. Ctrl-C stops everything it started; a run after a crash first removes what
/// the crashed run left.
/// </summary>
internal static class DevCommand
{
    public static Command Create()
    {
        var etcdUrl = new Option<string?>("--etcd") { Description = "Use this etcd (client URL) instead of starting one" };
        var etcdPort = new Option<int>("--etcd-port") { Description = "Loopback port of the etcd this starts", DefaultValueFactory = _ => 23790 };
        var stateDir = new Option<string>("--state-dir") { Description = "Where the local cluster keeps its files", DefaultValueFactory = _ => ".dev" };
        var prefix = new Option<string>("--prefix") { Description = "Registry key prefix", DefaultValueFactory = _ => RegistryKeys.DefaultPrefix };
        var dnsPort = new Option<int>("--dns-port") { Description = "Loopback port of the DNS server (UDP and TCP)", DefaultValueFactory = _ => 1053 };
        var dnsHttpPort = new Option<int>("--dns-http-port") { Description = "Port of the DNS server's /metrics and /healthz", DefaultValueFactory = _ => 9153 };
        var lbPort = new Option<int>("--lb-port") { Description = "Loopback port of the balancer's traffic", DefaultValueFactory = _ => 8080 };
        var lbAdminPort = new Option<int>("--lb-admin-port") { Description = "Port of the balancer's admin API", DefaultValueFactory = _ => 9181 };
        var lbHttpPort = new Option<int>("--lb-http-port") { Description = "Port of the balancer's /metrics and /healthz", DefaultValueFactory = _ => 9180 };
        var corePort = new Option<int>("--core-port") { Description = "Loopback port of Core's gRPC API", DefaultValueFactory = _ => 5001 };
        var coreHttpPort = new Option<int>("--core-http-port") { Description = "Port of Core's /metrics and /healthz", DefaultValueFactory = _ => 9182 };
        var agentHttpPort = new Option<int>("--agent-http-port") { Description = "Port of the first host's agent (/metrics, /healthz, /logs); host N gets this + N - 1", DefaultValueFactory = _ => 9190 };
        var sshPort = new Option<int>("--ssh-port") { Description = "Loopback port of the SSH gateway", DefaultValueFactory = _ => 2222 };
        var sshHttpPort = new Option<int>("--ssh-http-port") { Description = "Port of the SSH gateway's /metrics and /healthz", DefaultValueFactory = _ => 9154 };
        var sshUser = new Option<string>("--ssh-user") { Description = "Gateway user who may enter hello's containers", DefaultValueFactory = _ => Environment.UserName };
        var sshKey = new Option<string?>("--ssh-key") { Description = "OpenSSH public key file of that user (default: ~/.ssh/id_*.pub, an ed25519 key is made when there is none)" };
        var dockerHosts = new Option<string[]>("--docker-host") { Description = "Use this Docker engine (unix:// or tcp://) as a node instead of simulated hosts; repeat for more", AllowMultipleArgumentsPerToken = false };
        var dockerNetwork = new Option<string>("--docker-network") { Description = "Docker network for the demo app on --docker-host engines", DefaultValueFactory = _ => "bridge" };
        var hosts = new Option<int>("--hosts") { Description = "Simulated Docker hosts (network namespaces with their own dockerd); 0 for none", DefaultValueFactory = _ => 2 };
        var selfHosted = new Option<bool>("--self-hosted")
        {
            Description = "Run eru-dns and eru-lb as EdgeEru workloads (two replicas each, images built from this checkout) instead of processes",
        };
        hosts.Validators.Add(r =>
        {
            if (r.GetValue(hosts) is < 0 or > 12) r.AddError("--hosts must be between 0 and 12");
        });
        agentHttpPort.Validators.Add(r =>
        {
            if (r.GetValue(agentHttpPort) is < 1 or > 65535 - DockerRig.MaxHosts) r.AddError($"--agent-http-port must be between 1 and {65535 - DockerRig.MaxHosts}");
        });
        foreach (var port in (Option<int>[])[dnsPort, dnsHttpPort, lbPort, lbAdminPort, lbHttpPort, corePort, coreHttpPort, sshPort, sshHttpPort])
            port.Validators.Add(r =>
            {
                if (r.GetValue(port) is < 1 or > 65535) r.AddError($"{port.Name} must be between 1 and 65535");
            });
        etcdPort.Validators.Add(r =>
        {
            if (r.GetValue(etcdPort) is < 1 or > 65534) r.AddError("--etcd-port must be between 1 and 65534 (the next port is etcd's peer port)");
        });
        etcdUrl.Validators.Add(r =>
        {
            var v = r.GetValue(etcdUrl);
            if (v is not null && (!Uri.TryCreate(v, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")))
                r.AddError($"--etcd: \"{v}\" is not an http:// or https:// URL");
        });
        sshUser.Validators.Add(r =>
        {
            if (!Names.IsUser(r.GetValue(sshUser))) r.AddError($"--ssh-user: \"{r.GetValue(sshUser)}\" is not a login name (a-z, 0-9, '.', '_', '-', starting with a letter or '_')");
        });
        sshKey.Validators.Add(r =>
        {
            if (r.GetValue(sshKey) is { } f && !File.Exists(f)) r.AddError($"--ssh-key: {f} does not exist");
        });
        dockerHosts.Validators.Add(r =>
        {
            foreach (var h in r.GetValue(dockerHosts) ?? [])
                if (!h.StartsWith("unix://", StringComparison.Ordinal) && !h.StartsWith("tcp://", StringComparison.Ordinal))
                    r.AddError($"--docker-host: \"{h}\" is neither unix:///path nor tcp://host:port");
        });
        prefix.Validators.Add(r =>
        {
            try
            {
                _ = new RegistryKeys(r.GetValue(prefix)!);
            }
            catch (ArgumentException ex)
            {
                r.AddError("--prefix: " + ex.Message);
            }
        });

        var cmd = new Command("dev", "Run a local EdgeEru cluster in the foreground; Ctrl-C stops everything it started")
        {
            etcdUrl, etcdPort, stateDir, prefix, dnsPort, dnsHttpPort, lbPort, lbAdminPort, lbHttpPort, corePort, coreHttpPort, agentHttpPort, sshPort, sshHttpPort, sshUser, sshKey, dockerHosts, dockerNetwork, hosts,
            selfHosted,
        };
        selfHosted.Validators.Add(r =>
        {
            if (!r.GetValue(selfHosted)) return;
            if (r.GetValue(hosts) < 2) r.AddError("--self-hosted needs --hosts 2 or more (a replica of each edge service per host)");
            if (r.GetValue(dockerHosts) is { Length: > 0 }) r.AddError("--self-hosted runs on simulated hosts, not --docker-host engines");
            if (r.GetValue(etcdUrl) is not null) r.AddError("--self-hosted starts its own etcd (the edge's containers reach it on the rig's bridge)");
        });
        cmd.SetAction((pr, ct) => RunAsync(new DevSettings(pr.GetValue(etcdUrl), pr.GetValue(etcdPort), pr.GetValue(stateDir)!, pr.GetValue(prefix)!,
            pr.GetValue(dnsPort), pr.GetValue(dnsHttpPort), pr.GetValue(lbPort), pr.GetValue(lbAdminPort), pr.GetValue(lbHttpPort),
            pr.GetValue(corePort), pr.GetValue(coreHttpPort), pr.GetValue(agentHttpPort), pr.GetValue(sshPort), pr.GetValue(sshHttpPort), pr.GetValue(sshUser)!, pr.GetValue(sshKey), pr.GetValue(dockerHosts) ?? [], pr.GetValue(dockerNetwork)!,
            pr.GetValue(dockerHosts) is { Length: > 0 } ? 0 : pr.GetValue(hosts), pr.GetValue(selfHosted)), ct));
        return cmd;
    }

    private sealed record DevSettings(string? EtcdUrl, int EtcdPort, string StateDir, string Prefix, int DnsPort, int DnsHttpPort,
        int LbPort, int LbAdminPort, int LbHttpPort, int CorePort, int CoreHttpPort, int AgentHttpPort, int SshPort, int SshHttpPort,
        string SshUser, string? SshKey, string[] DockerHosts, string DockerNetwork, int Hosts, bool SelfHosted);

    private static async Task<int> RunAsync(DevSettings settings, CancellationToken ct)
    {
        using var logs = LoggerFactory.Create(b => b
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information));
        var log = logs.CreateLogger("eru.dev");
        var stateDir = Path.GetFullPath(settings.StateDir);
        Directory.CreateDirectory(stateDir);
        var startedAt = System.Diagnostics.Stopwatch.StartNew();
        // Everything this starts goes on a stack and is stopped in reverse order, whatever happens.
        await using var started = new StartedStack(log);
        try
        {
            foreach (var (pidFile, marker) in PidFiles(stateDir)) Leftovers.Clean(pidFile, marker, log);

            // A self-hosted edge runs in containers, which reach etcd through the rig's bridge: the rig comes first.
            DockerRig? rig = null;
            if (settings.Hosts > 0 && settings.DockerHosts.Length == 0 && Environment.IsPrivilegedProcess)
            {
                log.LogInformation("starting {Hosts} simulated Docker hosts", settings.Hosts);
                rig = started.Push("simulated hosts", await DockerRig.StartAsync(settings.Hosts, 'd'));
            }
            else if (settings.Hosts > 0 && settings.DockerHosts.Length == 0)
                log.LogWarning("simulated hosts need root (network namespaces); run ./eru dev as root, --docker-host, or --hosts 0");
            if (settings.SelfHosted && rig is null)
                throw new ServiceStartException("--self-hosted runs the edge on simulated hosts: it needs root and --hosts 2 or more");

            var etcdUrl = settings.EtcdUrl;
            var etcdData = Path.Combine(stateDir, "etcd");
            if (etcdUrl is null)
            {
                var dataDir = etcdData;
                if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true); // the dev cluster starts clean
                var etcd = started.Push("etcd", await EtcdServer.StartAsync(new EtcdServerOptions
                {
                    DataDir = dataDir,
                    ClientPort = settings.EtcdPort,
                    PeerPort = settings.EtcdPort + 1,
                    ExtraClientAddresses = settings.SelfHosted ? [rig!.BridgeAddress] : [],
                }, logs.CreateLogger("etcd"), ct), Path.Combine(stateDir, "etcd.pid"));
                await File.WriteAllTextAsync(Path.Combine(stateDir, "etcd.pid"), etcd.ProcessId.ToString(), ct);
                etcdUrl = etcd.ClientUrl;
            }

            using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcdUrl, Prefix = settings.Prefix });
            var store = new RegistryStore(conn);
            await store.CreateAsync(Kinds.Pods, new Pod { Name = "dev", Description = "local cluster of eru dev" }, ct: ct);
            await using var watcher = new RegistryWatcher(conn, logs.CreateLogger<RegistryWatcher>());
            using var sub = watcher.Subscribe(new SnapshotSummary(log).OnSnapshot);
            watcher.Start();
            await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(30), ct);
            var registryFlags = new[] { "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix, "--Logging:Format", "simple" };

            // The balancer's admin token, and the demo domain's canary graph (503 until hello's workloads are live).
            var token = NewToken();
            await File.WriteAllTextAsync(Path.Combine(stateDir, "lb.token"), token, ct);
            if (!settings.SelfHosted)
            {
                await StartServiceAsync(started, stateDir, "dns", "eru-dns.dll", settings.DnsHttpPort,
                [
                    .. registryFlags, "--Dns:Listen", "127.0.0.1", "--Dns:Port", settings.DnsPort.ToString(),
                    "--Http:Urls", $"http://127.0.0.1:{settings.DnsHttpPort}",
                ], ct);
                await StartServiceAsync(started, stateDir, "lb", "eru-lb.dll", settings.LbHttpPort,
                [
                    .. registryFlags, "--Lb:Urls", $"http://127.0.0.1:{settings.LbPort}", "--Lb:AdminUrls", $"http://127.0.0.1:{settings.LbAdminPort}",
                    "--Lb:AdminToken", token, "--Http:Urls", $"http://127.0.0.1:{settings.LbHttpPort}",
                ], ct);
            }
            await store.PutAsync(Kinds.LbDomains, DemoDomain(), ct: ct);

            // Core's API, for ./eru pod|node|deploy|capacity|replace|rm (the token is read from .dev/core.token).
            var coreToken = NewToken();
            await File.WriteAllTextAsync(Path.Combine(stateDir, "core.token"), coreToken, ct);
            // Secrets are sealed with a key kept beside the state (made once); bind mounts only under .dev/binds.
            var secretsKey = Path.Combine(stateDir, "secrets.key");
            if (!File.Exists(secretsKey))
            {
                await File.WriteAllBytesAsync(secretsKey, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), ct);
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(secretsKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            var bindRoot = Directory.CreateDirectory(Path.Combine(stateDir, "binds")).FullName;
            await StartServiceAsync(started, stateDir, "core", "eru-core.dll", settings.CoreHttpPort,
            [
                .. registryFlags, "--Core:SecretsKeyFile", secretsKey, "--Core:BindRoots", bindRoot,
                "--Core:Urls", $"http://127.0.0.1:{settings.CorePort}", "--Core:Token", coreToken,
                "--Http:Urls", $"http://127.0.0.1:{settings.CoreHttpPort}",
            ], ct);
            // The SSH gateway, with a user "dev" holding this machine's own public keys (if any) for every app.
            await StartServiceAsync(started, stateDir, "ssh", "eru-ssh.dll", settings.SshHttpPort,
            [
                .. registryFlags, "--Ssh:Listen", "127.0.0.1", "--Ssh:Port", settings.SshPort.ToString(),
                "--Ssh:HostKeyDirectory", Path.Combine(stateDir, "ssh-host-keys"), "--Ssh:AuditLog", Path.Combine(stateDir, "ssh-audit.jsonl"),
                "--Http:Urls", $"http://127.0.0.1:{settings.SshHttpPort}",
            ], ct);
            // A known_hosts file for the gateway's host keys (made by it on first start), so the try-it line checks them.
            await File.WriteAllLinesAsync(Path.Combine(stateDir, "ssh-known-hosts"), Directory.GetFiles(Path.Combine(stateDir, "ssh-host-keys"), "*.pub")
                .Select(f => $"[127.0.0.1]:{settings.SshPort} {File.ReadAllText(f).Trim()}"), ct);
            var devKeys = await DevKeysAsync(settings.SshKey, log, ct);
            await store.PutAsync(Kinds.SshUsers, new SshUser { Name = settings.SshUser, Keys = devKeys, Apps = new() { ["hello"] = new SshAppAccess() } }, ct: ct);

            // The Docker hosts as nodes: simulated ones, or engines the user brought.
            var nodes = new List<(string Name, string Endpoint, string Network)>();
            for (var i = 0; i < settings.DockerHosts.Length; i++)
            {
                var endpoint = settings.DockerHosts[i];
                using var engine = new DockerEngine(new DockerEndpoint { Address = endpoint });
                var (cpus, memory, _) = await engine.InfoAsync(ct);
                await DockerRig.ImportImageAsync(endpoint);
                var name = $"e{i + 1}";
                await store.PutAsync(Kinds.Nodes, new Node
                {
                    Name = name, Pod = "dev", Endpoint = new DockerEndpoint { Address = endpoint },
                    Capacity = new NodeCapacity { CpuCores = cpus, PiecesPerCore = 100, MemoryBytes = memory }, Networks = [settings.DockerNetwork],
                }, ct: ct);
                nodes.Add((name, endpoint, settings.DockerNetwork));
            }
            foreach (var h in rig?.Hosts ?? [])
            {
                await store.PutAsync(Kinds.Nodes, h.AsNode("dev", Environment.ProcessorCount, 2L << 30), ct: ct);
                nodes.Add(($"h{h.Index}", h.Endpoint, DockerRig.Network));
            }

            var agentToken = NewToken();
            IReadOnlyList<SelfHostedEdge.Replica> edge = [];
            if (nodes.Count > 0)
            {
                // One eru-agent per host, in the root namespace: it reaches the host's dockerd by its socket and
                // the containers through the rig's bridge, as an agent on a real host would.
                await File.WriteAllTextAsync(Path.Combine(stateDir, "agent.token"), agentToken, ct);
                for (var i = 0; i < nodes.Count; i++)
                {
                    var (name, endpoint, _) = nodes[i];
                    var port = settings.AgentHttpPort + i;
                    await StartServiceAsync(started, stateDir, "agent", "eru-agent.dll", port,
                    [
                        .. registryFlags, "--Agent:Node", name, "--Agent:Docker", endpoint,
                        "--Http:Urls", $"http://127.0.0.1:{port}", "--Http:Token", agentToken,
                        "--Logs:Sinks:0:Type", "file", "--Logs:Sinks:0:Path", Path.Combine(stateDir, "logs", $"{name}.jsonl"),
                        "--Logs:CursorFile", Path.Combine(stateDir, "logs", $"{name}.cursors.json"),
                    ], ct, $"agent {name}", AgentPid(stateDir, i + 1));
                }
                while ((await store.ListAsync(Kinds.NodeStatus, ct: ct)).Items.Count < nodes.Count) await Task.Delay(200, ct);
                if (settings.SelfHosted)
                {
                    // The edge as workloads: eru-dns and eru-lb built from this checkout's binaries, two replicas each.
                    var self = new SelfHostedEdge(rig!, $"http://{rig!.BridgeAddress}:{settings.EtcdPort}", settings.Prefix, stateDir,
                        $"http://127.0.0.1:{settings.CorePort}", coreToken, logs.CreateLogger("eru.dev.edge"));
                    edge = await self.StartAsync(started, token, ct);
                }
                var deployer = new Deployer(store, e => new DockerEngine(e), logs.CreateLogger<Deployer>(), watcher);
                foreach (var (version, count) in new[] { ("v1", 3), ("v2", 1) })
                {
                    var result = await deployer.DeployAsync(HelloSpec(version, count, nodes[0].Network), ct);
                    foreach (var i in result.Instances)
                        log.LogInformation("hello {Version}: {Name} on {Node} {Outcome}", version, i.Name, i.Node, i.Error ?? "created");
                    if (result.Error is not null) log.LogError("deploy hello {Version}: {Error}", version, result.Error);
                }
                // Ready means what the try-it block promises: hello's instances live (DNS and LB serve them).
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                while (watcher.Current.LiveCount < 4 + edge.Count && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
            }

            var dir = Path.GetRelativePath(Environment.CurrentDirectory, stateDir) is { } rel && !rel.StartsWith("..", StringComparison.Ordinal) ? rel : stateDir;
            var sshFlags = $"-p {settings.SshPort} -o UserKnownHostsFile={Path.Combine(dir, "ssh-known-hosts")}" + (settings.SshKey is { } pub && pub.EndsWith(".pub", StringComparison.Ordinal) ? $" -i {pub[..^4]}" : "");
            var etcdFlag = settings.Prefix == RegistryKeys.DefaultPrefix && etcdUrl == $"http://127.0.0.1:{settings.EtcdPort}" && settings.EtcdPort == 23790 ? "" : $" --etcd {etcdUrl} --prefix {settings.Prefix}";
            // The CLI's defaults are this command's defaults; other ports or state dirs are spelled out.
            var coreFlag = settings.CorePort == 5001 && dir == ".dev" ? "" : $" --core http://127.0.0.1:{settings.CorePort} --token $(cat {Path.Combine(dir, "core.token")})";
            var logsFlag = etcdFlag + (dir == ".dev" ? "" : $" --token $(cat {Path.Combine(dir, "agent.token")})");
            var lbFlag = settings.LbAdminPort == 9181 && dir == ".dev" ? "" : $" --admin http://127.0.0.1:{settings.LbAdminPort} --token $(cat {Path.Combine(dir, "lb.token")})";
            Console.WriteLine();
            Console.WriteLine($"EdgeEru dev cluster is up in {startedAt.Elapsed.TotalSeconds:0} s");
            Console.WriteLine($"  etcd       {etcdUrl,-30} prefix {settings.Prefix}{(settings.EtcdUrl is not null ? " (yours)" : $", data {etcdData}")}");
            Console.WriteLine($"  core       http://127.0.0.1:{settings.CorePort,-14} gRPC edgeeru.core.v1; token in {Path.Combine(dir, "core.token")}");
            if (edge.Count == 0)
            {
                Console.WriteLine($"  dns        127.0.0.1:{settings.DnsPort,-21} zone eru.; metrics http://127.0.0.1:{settings.DnsHttpPort}/metrics");
                Console.WriteLine($"  lb         http://127.0.0.1:{settings.LbPort,-14} dashboard http://127.0.0.1:{settings.LbAdminPort}/dashboard#token={token}");
            }
            foreach (var r in edge)
                Console.WriteLine(r.Entrypoint == "dns"
                    ? $"  dns        {r.Address + ":53",-24} workload {r.Name} on {r.Node}; metrics http://{r.Address}:9153/metrics"
                    : $"  lb         http://{r.Address,-17} workload {r.Name} on {r.Node}; dashboard http://{r.Address}:9181/dashboard#token={token}");
            if (edge.Count > 0) Console.WriteLine($"  edge spec  {Path.Combine(dir, "edge.yaml")} (eru replace it with --keep-ip to roll the edge)");
            Console.WriteLine($"  ssh        127.0.0.1:{settings.SshPort,-21} user {settings.SshUser}; audit in {Path.Combine(dir, "ssh-audit.jsonl")}");
            for (var i = 0; i < nodes.Count; i++)
                Console.WriteLine($"  node {nodes[i].Name,-5} {nodes[i].Endpoint,-30} agent http://127.0.0.1:{settings.AgentHttpPort + i}/metrics");
            Console.WriteLine();
            Console.WriteLine("Try it:");
            var (dnsAt, lbAt) = edge.Count == 0 ? ($"@127.0.0.1 -p {settings.DnsPort}", $"127.0.0.1:{settings.LbPort}")
                : ($"@{edge.First(r => r.Entrypoint == "dns").Address}", edge.First(r => r.Entrypoint == "lb").Address);
            Console.WriteLine($"  dig {dnsAt} web.hello.eru +short          # every hello web instance");
            Console.WriteLine($"  dig {dnsAt} v2.web.hello.eru +short       # the v2 ones");
            Console.WriteLine($"  curl -H 'Host: hello.eru.local' http://{lbAt}/");
            Console.WriteLine($"  curl -H 'Host: hello.eru.local' -H 'X-Canary: 1' http://{lbAt}/");
            Console.WriteLine($"  ssh {sshFlags} {settings.SshUser}~web.hello@127.0.0.1");
            Console.WriteLine($"  ./eru ps{etcdFlag}");
            Console.WriteLine($"  ./eru logs -f hello{logsFlag}");
            Console.WriteLine($"  ./eru node ls{coreFlag}");
            Console.WriteLine($"  ./eru lb explain hello.eru.local --header X-Canary=1{lbFlag}");
            if (nodes.Count > 0)
                Console.WriteLine($"  ./eru deploy examples/hello.yaml --pod dev --count 2 --memory 32M --network {nodes[0].Network} --tag v3 --env VERSION=v3{coreFlag}");
            Console.WriteLine();
            Console.WriteLine("Ctrl-C stops everything this started.");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException) when (settings.DockerHosts.Length > 0)
            {
                // Simulated hosts go away whole; engines the user brought stay, so our containers are taken off them.
                // From the last snapshot and Docker alone: Ctrl-C reaches etcd and the services at the same time.
                var engines = nodes.ToDictionary(n => n.Name, n => new DockerEngine(new DockerEndpoint { Address = n.Endpoint }));
                await Task.WhenAll(watcher.Current.Workloads.Select(w => w.Record!).Where(r => r is not null && engines.ContainsKey(r.Node)).Select(async w =>
                {
                    try
                    {
                        await engines[w.Node].RemoveAsync(w.Id, TimeSpan.FromSeconds(2), CancellationToken.None);
                        log.LogInformation("removed {Workload} from {Node}", w.Name, w.Node);
                    }
                    catch (Exception ex) when (ex is global::Docker.DotNet.DockerApiException or HttpRequestException or IOException or TimeoutException)
                    {
                        log.LogWarning("could not remove {Workload} from {Node}: {Error}", w.Name, w.Node, ex.Message);
                    }
                }));
                foreach (var e in engines.Values) e.Dispose();
                throw;
            }
            return 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            log.LogInformation("stopping");
            return 0;
        }
        catch (Exception ex) when (ex is ToolMissingException or EtcdStartException or ServiceStartException or Grpc.Core.RpcException or TimeoutException)
        {
            log.LogError("eru dev failed: {Error}", ex.Message);
            return 1;
        }
    }

    /// <summary>The pid files of what a run starts, and what each process's command line holds (leftovers of a crash).</summary>
    private static IEnumerable<(string PidFile, string Marker)> PidFiles(string stateDir) =>
    [
        .. Enumerable.Range(1, DockerRig.MaxHosts).Select(i => (AgentPid(stateDir, i), "eru-agent.dll")),
        (Path.Combine(stateDir, "dns.pid"), "eru-dns.dll"), (Path.Combine(stateDir, "lb.pid"), "eru-lb.dll"),
        (Path.Combine(stateDir, "core.pid"), "eru-core.dll"), (Path.Combine(stateDir, "ssh.pid"), "eru-ssh.dll"),
        (Path.Combine(stateDir, "etcd.pid"), "etcd"),
    ];

    private static string NewToken() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    private static string AgentPid(string stateDir, int host) => Path.Combine(stateDir, $"agent-h{host}.pid");

    /// <summary>
    /// Starts one of our services (built by ./eru next to the CLI, in ../{name}), waits for its /healthz and puts it
    /// on the stack (its pid file, .dev/{name}.pid unless given, lets a later run clean up after a crash).
    /// </summary>
    private static async Task StartServiceAsync(StartedStack started, string stateDir, string name, string dll, int httpPort, string[] args,
        CancellationToken ct, string? label = null, string? pidFile = null)
    {
        label ??= name;
        pidFile ??= Path.Combine(stateDir, name + ".pid");
        var path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", name, dll));
        if (!File.Exists(path)) throw new ServiceStartException($"{name}: {path} is missing; ./eru builds it");
        var child = started.Push(label, ChildProcess.Start("dotnet", [path, .. args], line => Console.WriteLine($"[{label}] {line}")), pidFile);
        await File.WriteAllTextAsync(pidFile, child.Id.ToString(), ct);
        await WaitHealthyAsync(label, child, httpPort, ct);
    }

    private static async Task WaitHealthyAsync(string name, ChildProcess child, int httpPort, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (child.HasExited) throw new ServiceStartException($"{name} exited with code {child.ExitCode}:\n{child.OutputTail()}");
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
            if (DateTime.UtcNow > deadline) throw new ServiceStartException($"{name} did not become healthy within 60 s:\n{child.OutputTail()}");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>hello's web entrypoint from examples/hello.yaml, as `eru deploy` would send it.</summary>
    private static DeploySpec HelloSpec(string version, int count, string network) =>
        AppSpec.Parse(File.ReadAllText(Path.Combine("examples", "hello.yaml"))).ToDeploySpec("web", new DeploySpec
        {
            App = "hello", Entrypoint = "web", Image = "", Pod = "dev", Count = count, Tags = [version], Env = [$"VERSION={version}"],
            Networks = new Dictionary<string, string> { [network] = "" },
            MemoryRequest = 32L << 20, MemoryLimit = 64L << 20, Cpu = 0.2,
        });

    /// <summary>The demo domain: X-Canary: 1 or 10% of users (sticky by cookie) to hello v2, the rest to v1.</summary>
    private static readonly string[] DevKeyFiles = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"];

    /// <summary>
    /// The gateway user's public keys: the file given, else this machine's own ~/.ssh/id_*.pub; when there is
    /// none, an ed25519 key is made (as ssh-keygen would for a newcomer), so the try-it ssh line works.
    /// </summary>
    private static async Task<string[]> DevKeysAsync(string? keyFile, ILogger log, CancellationToken ct)
    {
        if (keyFile is not null)
        {
            var line = (await File.ReadAllTextAsync(keyFile, ct)).Trim();
            return SshUser.KeyLineProblem(line) is { } problem ? throw new ServiceStartException($"--ssh-key {keyFile}: {problem}") : [line];
        }
        var dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ssh");
        var keys = DevKeyFiles.Select(f => Path.Combine(dir, f)).Where(File.Exists)
            .Select(f => File.ReadAllText(f).Trim()).Where(l => SshUser.KeyLineProblem(l) is null).ToArray();
        if (keys.Length > 0) return keys;
        Directory.CreateDirectory(dir);
        var key = Path.Combine(dir, "id_ed25519");
        log.LogInformation("no SSH key in {Dir}: making {Key}", dir, key);
        await Shell.RunAsync(Tools.Find("ssh-keygen", "openssh-client"), ["-q", "-t", "ed25519", "-N", "", "-C", $"{Environment.UserName}@eru-dev", "-f", key]);
        return [(await File.ReadAllTextAsync(key + ".pub", ct)).Trim()];
    }

    private static LbDomain DemoDomain() => new()
    {
        Name = "hello.eru.local",
        Init = "canary-header",
        Nodes = new()
        {
            ["canary-header"] = new LbNode { Type = "header", Name = "X-Canary", Match = "exact", Value = "1", Succ = "v2", Fail = "split" },
            ["split"] = new LbNode { Type = "percent", Key = "cookie:uid", Percent = 10, Succ = "v2", Fail = "v1" },
            ["v1"] = new LbNode { Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v1"] } },
            ["v2"] = new LbNode
            {
                Type = "backend",
                Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v2"] },
                Fallback = new LbSelector { Tags = ["v1"] },
            },
        },
    };

    internal sealed class ServiceStartException(string message) : Exception(message);

    /// <summary>Logs what the registry holds whenever it changes, at most once a second.</summary>
    private sealed class SnapshotSummary(ILogger log)
    {
        private DateTime _last = DateTime.MinValue;
        private string _lastText = "";

        public void OnSnapshot(RegistrySnapshot s)
        {
            var text = $"{s.Pods.Count} pods, {s.Nodes.Count} nodes ({s.NodeStatuses.Count} alive), {s.Workloads.Count} workloads ({s.LiveCount} live), {s.Problems.Count} bad values";
            if (text == _lastText || DateTime.UtcNow - _last < TimeSpan.FromSeconds(1)) return;
            _last = DateTime.UtcNow;
            _lastText = text;
            log.LogInformation("registry at revision {Revision}: {Summary}", s.Revision, text);
        }
    }
}
