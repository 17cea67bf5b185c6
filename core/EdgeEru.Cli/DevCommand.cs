using System.CommandLine;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Docker;
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
        };
        cmd.SetAction((pr, ct) => RunAsync(new DevSettings(pr.GetValue(etcdUrl), pr.GetValue(etcdPort), pr.GetValue(stateDir)!, pr.GetValue(prefix)!,
            pr.GetValue(dnsPort), pr.GetValue(dnsHttpPort), pr.GetValue(lbPort), pr.GetValue(lbAdminPort), pr.GetValue(lbHttpPort),
            pr.GetValue(corePort), pr.GetValue(coreHttpPort), pr.GetValue(agentHttpPort), pr.GetValue(sshPort), pr.GetValue(sshHttpPort), pr.GetValue(sshUser)!, pr.GetValue(sshKey), pr.GetValue(dockerHosts) ?? [], pr.GetValue(dockerNetwork)!,
            pr.GetValue(dockerHosts) is { Length: > 0 } ? 0 : pr.GetValue(hosts)), ct));
        return cmd;
    }

    private sealed record DevSettings(string? EtcdUrl, int EtcdPort, string StateDir, string Prefix, int DnsPort, int DnsHttpPort,
        int LbPort, int LbAdminPort, int LbHttpPort, int CorePort, int CoreHttpPort, int AgentHttpPort, int SshPort, int SshHttpPort,
        string SshUser, string? SshKey, string[] DockerHosts, string DockerNetwork, int Hosts);

    private static async Task<int> RunAsync(DevSettings settings, CancellationToken ct)
    {
        using var logs = LoggerFactory.Create(b => b
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information));
        var log = logs.CreateLogger("eru.dev");
        var stateDir = Path.GetFullPath(settings.StateDir);
        Directory.CreateDirectory(stateDir);
        var etcdPid = Path.Combine(stateDir, "etcd.pid");
        var dnsPid = Path.Combine(stateDir, "dns.pid");
        var lbPid = Path.Combine(stateDir, "lb.pid");
        var corePid = Path.Combine(stateDir, "core.pid");
        var sshPid = Path.Combine(stateDir, "ssh.pid");
        var startedAt = System.Diagnostics.Stopwatch.StartNew();
        var etcdUrl = settings.EtcdUrl;
        EtcdServer? etcd = null;
        ChildProcess? dns = null;
        ChildProcess? lb = null;
        ChildProcess? core = null;
        ChildProcess? ssh = null;
        DockerRig? rig = null;
        var agents = new List<(ChildProcess Process, string PidFile)>();
        try
        {
            for (var i = 1; i <= DockerRig.MaxHosts; i++) Leftovers.Clean(AgentPid(stateDir, i), "eru-agent.dll", log);
            Leftovers.Clean(dnsPid, "eru-dns.dll", log);
            Leftovers.Clean(lbPid, "eru-lb.dll", log);
            Leftovers.Clean(corePid, "eru-core.dll", log);
            Leftovers.Clean(sshPid, "eru-ssh.dll", log);
            if (etcdUrl is null)
            {
                Leftovers.Clean(etcdPid, "etcd", log);
                var dataDir = Path.Combine(stateDir, "etcd");
                if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true); // the dev cluster starts clean
                etcd = await EtcdServer.StartAsync(new EtcdServerOptions
                {
                    DataDir = dataDir,
                    ClientPort = settings.EtcdPort,
                    PeerPort = settings.EtcdPort + 1,
                }, logs.CreateLogger("etcd"), ct);
                await File.WriteAllTextAsync(etcdPid, etcd.ProcessId.ToString(), ct);
                etcdUrl = etcd.ClientUrl;
            }

            using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcdUrl, Prefix = settings.Prefix });
            var store = new RegistryStore(conn);
            await store.CreateAsync(Kinds.Pods, new Pod { Name = "dev", Description = "local cluster of eru dev" }, ct: ct);
            await using var watcher = new RegistryWatcher(conn, logs.CreateLogger<RegistryWatcher>());
            using var sub = watcher.Subscribe(new SnapshotSummary(log).OnSnapshot);
            watcher.Start();
            await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(30), ct);

            dns = await StartServiceAsync("dns", "eru-dns.dll", dnsPid, settings.DnsHttpPort,
            [
                "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix,
                "--Dns:Listen", "127.0.0.1", "--Dns:Port", settings.DnsPort.ToString(),
                "--Http:Urls", $"http://127.0.0.1:{settings.DnsHttpPort}", "--Logging:Format", "simple",
            ], ct);

            // The balancer, with the demo domain's canary graph (503 until hello's workloads are live).
            var token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            await File.WriteAllTextAsync(Path.Combine(stateDir, "lb.token"), token, ct);
            lb = await StartServiceAsync("lb", "eru-lb.dll", lbPid, settings.LbHttpPort,
            [
                "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix,
                "--Lb:Urls", $"http://127.0.0.1:{settings.LbPort}", "--Lb:AdminUrls", $"http://127.0.0.1:{settings.LbAdminPort}",
                "--Lb:AdminToken", token, "--Http:Urls", $"http://127.0.0.1:{settings.LbHttpPort}", "--Logging:Format", "simple",
            ], ct);
            await store.PutAsync(Kinds.LbDomains, DemoDomain(), ct: ct);

            // Core's API, for ./eru pod|node|deploy|capacity|replace|rm (the token is read from .dev/core.token).
            var coreToken = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            await File.WriteAllTextAsync(Path.Combine(stateDir, "core.token"), coreToken, ct);
            // Secrets are sealed with a key kept beside the state (made once); bind mounts only under .dev/binds.
            var secretsKey = Path.Combine(stateDir, "secrets.key");
            if (!File.Exists(secretsKey))
            {
                await File.WriteAllBytesAsync(secretsKey, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), ct);
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(secretsKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            var bindRoot = Directory.CreateDirectory(Path.Combine(stateDir, "binds")).FullName;
            core = await StartServiceAsync("core", "eru-core.dll", corePid, settings.CoreHttpPort,
            [
                "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix,
                "--Core:SecretsKeyFile", secretsKey, "--Core:BindRoots", bindRoot,
                "--Core:Urls", $"http://127.0.0.1:{settings.CorePort}", "--Core:Token", coreToken,
                "--Http:Urls", $"http://127.0.0.1:{settings.CoreHttpPort}", "--Logging:Format", "simple",
            ], ct);
            // The SSH gateway, with a user "dev" holding this machine's own public keys (if any) for every app.
            ssh = await StartServiceAsync("ssh", "eru-ssh.dll", sshPid, settings.SshHttpPort,
            [
                "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix,
                "--Ssh:Listen", "127.0.0.1", "--Ssh:Port", settings.SshPort.ToString(),
                "--Ssh:HostKeyDirectory", Path.Combine(stateDir, "ssh-host-keys"), "--Ssh:AuditLog", Path.Combine(stateDir, "ssh-audit.jsonl"),
                "--Http:Urls", $"http://127.0.0.1:{settings.SshHttpPort}", "--Logging:Format", "simple",
            ], ct);
            // A known_hosts file for the gateway's host keys (made by it on first start), so the try-it line checks them.
            await File.WriteAllLinesAsync(Path.Combine(stateDir, "ssh-known-hosts"), Directory.GetFiles(Path.Combine(stateDir, "ssh-host-keys"), "*.pub")
                .Select(f => $"[127.0.0.1]:{settings.SshPort} {File.ReadAllText(f).Trim()}"), ct);
            var devKeys = await DevKeysAsync(settings.SshKey, log, ct);
            await store.PutAsync(Kinds.SshUsers, new SshUser { Name = settings.SshUser, Keys = devKeys, Apps = new() { ["hello"] = new SshAppAccess() } }, ct: ct);

            // The Docker hosts: simulated ones (network namespaces with their own dockerd) or engines the user brought.
            var nodes = new List<(string Name, string Endpoint, string Network)>();
            if (settings.DockerHosts.Length > 0)
            {
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
            }
            else if (settings.Hosts > 0 && !Environment.IsPrivilegedProcess)
                log.LogWarning("simulated hosts need root (network namespaces); run ./eru dev as root, --docker-host, or --hosts 0");
            else if (settings.Hosts > 0)
            {
                log.LogInformation("starting {Hosts} simulated Docker hosts", settings.Hosts);
                rig = await DockerRig.StartAsync(settings.Hosts, 'd');
                foreach (var h in rig.Hosts)
                {
                    await store.PutAsync(Kinds.Nodes, h.AsNode("dev", Environment.ProcessorCount, 2L << 30), ct: ct);
                    nodes.Add(($"h{h.Index}", h.Endpoint, DockerRig.Network));
                }
            }

            var agentToken = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            if (nodes.Count > 0)
            {
                // One eru-agent per host, in the root namespace: it reaches the host's dockerd by its socket and
                // the containers through the rig's bridge, as an agent on a real host would.
                await File.WriteAllTextAsync(Path.Combine(stateDir, "agent.token"), agentToken, ct);
                for (var i = 0; i < nodes.Count; i++)
                {
                    var (name, endpoint, _) = nodes[i];
                    var port = settings.AgentHttpPort + i;
                    var pidFile = AgentPid(stateDir, i + 1);
                    agents.Add((await StartServiceAsync("agent", "eru-agent.dll", pidFile, port,
                    [
                        "--Registry:Endpoints", etcdUrl, "--Registry:Prefix", settings.Prefix, "--Agent:Node", name, "--Agent:Docker", endpoint,
                        "--Http:Urls", $"http://127.0.0.1:{port}", "--Http:Token", agentToken, "--Logging:Format", "simple",
                        "--Logs:Sinks:0:Type", "file", "--Logs:Sinks:0:Path", Path.Combine(stateDir, "logs", $"{name}.jsonl"),
                    ], ct, $"agent {name}"), pidFile));
                }
                var deployer = new Deployer(store, e => new DockerEngine(e), logs.CreateLogger<Deployer>(), watcher);
                while ((await store.ListAsync(Kinds.NodeStatus, ct: ct)).Items.Count < nodes.Count) await Task.Delay(200, ct);
                foreach (var (version, count) in new[] { ("v1", 3), ("v2", 1) })
                {
                    var result = await deployer.DeployAsync(HelloSpec(version, count, nodes[0].Network), ct);
                    foreach (var i in result.Instances)
                        log.LogInformation("hello {Version}: {Name} on {Node} {Outcome}", version, i.Name, i.Node, i.Error ?? "created");
                    if (result.Error is not null) log.LogError("deploy hello {Version}: {Error}", version, result.Error);
                }
                // Ready means what the try-it block promises: hello's instances live (DNS and LB serve them).
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                while (watcher.Current.LiveCount < 4 && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
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
            Console.WriteLine($"  etcd       {etcdUrl,-30} prefix {settings.Prefix}{(etcd is null ? " (yours)" : $", data {etcd.DataDir}")}");
            Console.WriteLine($"  core       http://127.0.0.1:{settings.CorePort,-14} gRPC edgeeru.core.v1; token in {Path.Combine(dir, "core.token")}");
            Console.WriteLine($"  dns        127.0.0.1:{settings.DnsPort,-21} zone eru.; metrics http://127.0.0.1:{settings.DnsHttpPort}/metrics");
            Console.WriteLine($"  lb         http://127.0.0.1:{settings.LbPort,-14} dashboard http://127.0.0.1:{settings.LbAdminPort}/dashboard#token={token}");
            Console.WriteLine($"  ssh        127.0.0.1:{settings.SshPort,-21} user {settings.SshUser}; audit in {Path.Combine(dir, "ssh-audit.jsonl")}");
            for (var i = 0; i < nodes.Count; i++)
                Console.WriteLine($"  node {nodes[i].Name,-5} {nodes[i].Endpoint,-30} agent http://127.0.0.1:{settings.AgentHttpPort + i}/metrics");
            Console.WriteLine();
            Console.WriteLine("Try it:");
            Console.WriteLine($"  dig @127.0.0.1 -p {settings.DnsPort} web.hello.eru +short          # every hello web instance");
            Console.WriteLine($"  dig @127.0.0.1 -p {settings.DnsPort} v2.web.hello.eru +short       # the v2 ones");
            Console.WriteLine($"  curl -H 'Host: hello.eru.local' http://127.0.0.1:{settings.LbPort}/");
            Console.WriteLine($"  curl -H 'Host: hello.eru.local' -H 'X-Canary: 1' http://127.0.0.1:{settings.LbPort}/");
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
                    catch (Exception ex) when (ex is Docker.DotNet.DockerApiException or HttpRequestException or IOException or TimeoutException)
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
        finally
        {
            // Agents first, while etcd is up: a clean stop revokes each one's lease.
            foreach (var (agent, pidFile) in agents)
            {
                await agent.DisposeAsync();
                File.Delete(pidFile);
            }
            if (agents.Count > 0) log.LogInformation("agents stopped");
            if (rig is not null)
            {
                await rig.DisposeAsync();
                log.LogInformation("simulated hosts removed");
            }
            if (core is not null)
            {
                await core.DisposeAsync();
                File.Delete(corePid);
                log.LogInformation("core stopped");
            }
            if (ssh is not null)
            {
                await ssh.DisposeAsync();
                File.Delete(sshPid);
                log.LogInformation("ssh stopped");
            }
            if (lb is not null)
            {
                await lb.DisposeAsync();
                File.Delete(lbPid);
                log.LogInformation("lb stopped");
            }
            if (dns is not null)
            {
                await dns.DisposeAsync();
                File.Delete(dnsPid);
                log.LogInformation("dns stopped");
            }
            if (etcd is not null)
            {
                await etcd.DisposeAsync();
                File.Delete(etcdPid);
                log.LogInformation("etcd stopped");
            }
        }
    }

    private static string AgentPid(string stateDir, int host) => Path.Combine(stateDir, $"agent-h{host}.pid");

    /// <summary>Starts one of our services (built by ./eru next to the CLI, in ../{name}) and waits for its /healthz.</summary>
    private static async Task<ChildProcess> StartServiceAsync(string name, string dll, string pidFile, int httpPort, string[] args, CancellationToken ct, string? label = null)
    {
        label ??= name;
        var path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", name, dll));
        if (!File.Exists(path)) throw new ServiceStartException($"{name}: {path} is missing; ./eru builds it");
        var child = ChildProcess.Start("dotnet", [path, .. args], line => Console.WriteLine($"[{label}] {line}"));
        try
        {
            await File.WriteAllTextAsync(pidFile, child.Id.ToString(), ct);
            await WaitHealthyAsync(label, child, httpPort, ct);
            return child;
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
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

    private sealed class ServiceStartException(string message) : Exception(message);

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
