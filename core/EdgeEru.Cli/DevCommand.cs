using System.CommandLine;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru dev</c>: a local cluster in the foreground. Here are its flags and their checks; <see cref="DevRun"/>
/// starts the components. Ctrl-C stops everything it started; a run after a crash first removes what the crashed
/// run left.
/// </summary>
internal static class DevCommand
{
    public static Command Create()
    {
        var etcdUrl = new Option<string?>("--etcd")
        {
            Description = "Use this etcd (client URLs, comma separated) instead of starting one",
        };
        var etcdPort = new Option<int>("--etcd-port")
        {
            Description = "Loopback port of the etcd this starts (members of a cluster take the following ports, client and peer in turn)",
            DefaultValueFactory = _ => 23790,
        };
        var etcdMembers = new Option<int>("--etcd-members")
        {
            Description = $"Members of the etcd cluster this starts: 1, 3 or 5 (at most {EtcdCluster.MaxMembers})",
            DefaultValueFactory = _ => 1,
        };
        var stateDir = new Option<string>("--state-dir")
        {
            Description = "Where the local cluster keeps its files", DefaultValueFactory = _ => ".dev",
        };
        var prefix = new Option<string>("--prefix")
        {
            Description = "Registry key prefix", DefaultValueFactory = _ => RegistryKeys.DefaultPrefix,
        };
        var dnsPort = Port("--dns-port", "Loopback port of the DNS server (UDP and TCP)", 1053);
        var dnsHttpPort = Port("--dns-http-port", "Port of the DNS server's /metrics and /healthz", 9153);
        var lbPort = Port("--lb-port", "Loopback port of the balancer's traffic", 8080);
        var lbAdminPort = Port("--lb-admin-port", "Port of the balancer's admin API", 9181);
        var lbHttpPort = Port("--lb-http-port", "Port of the balancer's /metrics and /healthz", 9180);
        var lbTlsPort = Port("--lb-tls-port", "Loopback port of the balancer's HTTPS (with --acme)", 8443);
        var corePort = Port("--core-port", "Loopback port of Core's gRPC API", 5001);
        var coreHttpPort = Port("--core-http-port", "Port of Core's /metrics and /healthz", 9182);
        var consolePort = Port("--console-port", "Loopback port of Core's web console", 5080);
        var agentHttpPort = new Option<int>("--agent-http-port")
        {
            Description = "Port of the first host's agent (/metrics, /healthz, /logs); host N gets this + N - 1",
            DefaultValueFactory = _ => 9190,
        };
        var sshPort = Port("--ssh-port", "Loopback port of the SSH gateway", 2222);
        var sshHttpPort = Port("--ssh-http-port", "Port of the SSH gateway's /metrics and /healthz", 9154);
        var sshUser = new Option<string>("--ssh-user")
        {
            Description = "Gateway user who may enter hello's containers", DefaultValueFactory = _ => Environment.UserName,
        };
        var sshKey = new Option<string?>("--ssh-key")
        {
            Description = "OpenSSH public key file of that user (default: ~/.ssh/id_*.pub, an ed25519 key is made when there is none)",
        };
        var dockerHosts = new Option<string[]>("--docker-host")
        {
            Description = "Use this Docker engine (unix:// or tcp://) as a node instead of simulated hosts; repeat for more",
            AllowMultipleArgumentsPerToken = false,
        };
        var dockerNetwork = new Option<string>("--docker-network")
        {
            Description = "Docker network for the demo app on --docker-host engines", DefaultValueFactory = _ => "bridge",
        };
        var hosts = new Option<int>("--hosts")
        {
            Description = "Simulated Docker hosts (network namespaces with their own dockerd); 0 for none", DefaultValueFactory = _ => 2,
        };
        var selfHosted = new Option<bool>("--self-hosted")
        {
            Description = "Run eru-dns and eru-lb as EdgeEru workloads (two replicas each, images built from this checkout) "
                + "instead of processes",
        };
        var datacenter = new Option<string?>("--datacenter")
        {
            Description = "Name this cluster's datacenter (Core:Datacenter; DNS names {app}.{datacenter}.eru, docs/multi-dc.md)",
        };
        var followDcs = new Option<string[]>("--follow-dc")
        {
            Description = "Have eru-dns and eru-lb follow another datacenter's registry, read-only: NAME=http://HOST:PORT[/PREFIX] "
                + "(its etcd; the prefix defaults to this cluster's); repeat in failover order",
            AllowMultipleArgumentsPerToken = false,
        };
        datacenter.Validators.Add(r =>
        {
            if (r.GetValue(datacenter) is { } dc && !Names.IsLabel(dc)) r.AddError($"--datacenter: \"{dc}\" is not a DNS label");
        });
        followDcs.Validators.Add(r =>
        {
            foreach (var f in r.GetValue(followDcs) ?? [])
                if (DevSettings.ParseFollow(f, "/eru") is { Problem: { } problem }) r.AddError($"--follow-dc {f}: {problem}");
            if (r.GetValue(followDcs) is { Length: > 0 } && r.GetValue(selfHosted))
                r.AddError("--follow-dc is for eru-dns and eru-lb as processes, not with --self-hosted");
        });
        var acme = new Option<bool>("--acme")
        {
            Description = "Run an ACME CA (pebble) beside the cluster and have eru-lb get the demo domain's certificate from it "
                + "(HTTP-01 on the balancer's plain port), served on --lb-tls-port",
        };
        var network = new Option<string>("--network")
        {
            Description = "How simulated hosts' containers are reached: macvlan (one L2 segment) or routed (a bridge per host on "
                + "a block Core gives it, routes spread by BGP: bird2 in each host and in the root namespace)",
            DefaultValueFactory = _ => "macvlan",
        };
        network.AcceptOnlyFromAmong("macvlan", "routed");
        network.Validators.Add(r =>
        {
            if (r.GetValue(network) != "routed") return;
            if (r.GetValue(dockerHosts) is { Length: > 0 })
                r.AddError("--network routed runs on simulated hosts, not --docker-host engines");
            if (r.GetValue(hosts) < 1) r.AddError("--network routed needs --hosts 1 or more");
            if (r.GetValue(selfHosted))
                r.AddError("--network routed does not run a --self-hosted edge yet (its replicas keep macvlan addresses)");
        });
        hosts.Validators.Add(r =>
        {
            if (r.GetValue(hosts) is < 0 or > 12) r.AddError("--hosts must be between 0 and 12");
        });
        agentHttpPort.Validators.Add(r =>
        {
            if (r.GetValue(agentHttpPort) is < 1 or > 65535 - DockerRig.MaxHosts)
                r.AddError($"--agent-http-port must be between 1 and {65535 - DockerRig.MaxHosts}");
        });
        etcdPort.Validators.Add(r =>
        {
            var last = 65536 - 2 * r.GetValue(etcdMembers);
            if (r.GetValue(etcdPort) < 1 || r.GetValue(etcdPort) > last)
                r.AddError($"--etcd-port must be between 1 and {last} (each member takes two ports from it: client and peer)");
        });
        etcdMembers.Validators.Add(r =>
        {
            if (r.GetValue(etcdMembers) is not (1 or 3 or 5))
                r.AddError($"--etcd-members must be 1, 3 or 5 (an odd count: a majority must survive), not {r.GetValue(etcdMembers)}");
            else if (r.GetValue(etcdMembers) > 1 && r.GetValue(etcdUrl) is not null)
                r.AddError("--etcd-members starts an etcd cluster; with --etcd the cluster is yours");
        });
        etcdUrl.Validators.Add(r =>
        {
            foreach (var v in r.GetValue(etcdUrl)?.Split(',', StringSplitOptions.TrimEntries) ?? [])
                if (!Uri.TryCreate(v, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
                    r.AddError($"--etcd: \"{v}\" is not an http:// or https:// URL");
        });
        sshUser.Validators.Add(r =>
        {
            if (!Names.IsUser(r.GetValue(sshUser)))
                r.AddError($"--ssh-user: \"{r.GetValue(sshUser)}\" is not a login name "
                    + "(a-z, 0-9, '.', '_', '-', starting with a letter or '_')");
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
            etcdUrl, etcdPort, etcdMembers, stateDir, prefix, dnsPort, dnsHttpPort, lbPort, lbAdminPort, lbHttpPort, corePort, coreHttpPort,
            consolePort, agentHttpPort, sshPort, sshHttpPort, sshUser, sshKey, dockerHosts, dockerNetwork, hosts, selfHosted,
            lbTlsPort, acme, datacenter, followDcs, network,
        };
        acme.Validators.Add(r =>
        {
            if (r.GetValue(acme) && r.GetValue(selfHosted))
                r.AddError("--acme runs with eru-lb as a process on loopback, not with --self-hosted");
        });
        selfHosted.Validators.Add(r =>
        {
            if (!r.GetValue(selfHosted)) return;
            if (r.GetValue(hosts) < 2) r.AddError("--self-hosted needs --hosts 2 or more (a replica of each edge service per host)");
            if (r.GetValue(dockerHosts) is { Length: > 0 }) r.AddError("--self-hosted runs on simulated hosts, not --docker-host engines");
            if (r.GetValue(etcdUrl) is not null)
                r.AddError("--self-hosted starts its own etcd (the edge's containers reach it on the rig's bridge)");
        });
        cmd.SetAction((pr, ct) => RunAsync(new DevSettings(pr.GetValue(etcdUrl), pr.GetValue(etcdPort), pr.GetValue(etcdMembers),
            pr.GetValue(stateDir)!, pr.GetValue(prefix)!, pr.GetValue(dnsPort), pr.GetValue(dnsHttpPort), pr.GetValue(lbPort),
            pr.GetValue(lbAdminPort), pr.GetValue(lbHttpPort), pr.GetValue(corePort), pr.GetValue(coreHttpPort),
            pr.GetValue(consolePort), pr.GetValue(agentHttpPort),
            pr.GetValue(sshPort), pr.GetValue(sshHttpPort), pr.GetValue(sshUser)!, pr.GetValue(sshKey), pr.GetValue(dockerHosts) ?? [],
            pr.GetValue(dockerNetwork)!, pr.GetValue(dockerHosts) is { Length: > 0 } ? 0 : pr.GetValue(hosts), pr.GetValue(selfHosted),
            pr.GetValue(network) == "routed" ? RigNetwork.Routed : RigNetwork.Macvlan,
            pr.GetValue(acme), pr.GetValue(lbTlsPort), pr.GetValue(datacenter), pr.GetValue(followDcs) ?? []),
            ct));
        return cmd;
    }

    /// <summary>A port option, checked to be one.</summary>
    private static Option<int> Port(string name, string description, int defaultPort)
    {
        var port = new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultPort };
        port.Validators.Add(r =>
        {
            if (r.GetValue(port) is < 1 or > 65535) r.AddError($"{name} must be between 1 and 65535");
        });
        return port;
    }

    /// <summary>The most etcd members <c>--etcd-members</c> starts (each has a pid file a later run looks for).</summary>
    public const int MaxEtcdMembers = EtcdCluster.MaxMembers;

    private static async Task<int> RunAsync(DevSettings settings, CancellationToken ct)
    {
        using var logs = LoggerFactory.Create(b => b
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information));
        var log = logs.CreateLogger("eru.dev");
        // Everything the run starts goes on its stack and is stopped in reverse order, whatever happens.
        await using var run = new DevRun(settings, logs);
        try
        {
            await run.RunAsync(ct);
            return 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            log.LogInformation("stopping");
            return 0;
        }
        catch (Exception ex) when (ex is ToolMissingException or EtcdStartException or ServiceStartException or Grpc.Core.RpcException
            or TimeoutException)
        {
            log.LogError("eru dev failed: {Error}", ex.Message);
            return 1;
        }
    }

    internal sealed class ServiceStartException(string message) : Exception(message);
}
