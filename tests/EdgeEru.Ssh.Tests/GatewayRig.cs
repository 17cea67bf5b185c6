using System.Net;
using EdgeEru.Agent;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Mimiron;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace EdgeEru.Ssh.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GatewayRigCollection : ICollectionFixture<GatewayRig>
{
    public const string Name = "gateway-rig";
}

/// <summary>
/// Real parts for the gateway: etcd, one simulated Docker host with its agent, two live instances of
/// <c>web.hello</c> deployed by Core, and eru-ssh following the registry, with users ops (shell in hello),
/// auditor (commands only in hello) and stranger (only another app).
/// </summary>
public sealed class GatewayRig : IAsyncLifetime, IDisposable
{
    private readonly EtcdFixture _etcd = new();
    private readonly CancellationTokenSource _stop = new();
    private DockerRig? _rig;
    private EtcdConnection? _conn;
    private RegistryWatcher? _watcher;
    private NodeAgent? _agent;
    private Task? _agentRun;
    private WebApplication? _gateway;

    public OpenSshClient Client { get; } = new();
    public RegistryStore Store { get; private set; } = null!;
    public DockerRig Rig => _rig!;
    public string Prefix { get; } = EtcdFixture.NewPrefix();
    public int Port { get; private set; }
    public int HttpPort { get; private set; }
    public string AuditPath { get; private set; } = "";
    public string OpsKey { get; private set; } = "";
    public string AuditorKey { get; private set; } = "";
    public string StrangerKey { get; private set; } = "";
    public string CaKey { get; private set; } = "";
    public IReadOnlyList<string> HostKeyLines { get; private set; } = [];
    public IReadOnlyList<DeployedInstance> Instances { get; private set; } = [];

    private static readonly string[] SftpFiles =
        ["/usr/lib/openssh/sftp-server", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"];

    public async Task InitializeAsync()
    {
        await _etcd.InitializeAsync();
        _rig = await DockerRig.StartAsync(hosts: 1, idPrefix: 's');
        _conn = new EtcdConnection(_etcd.Options(Prefix));
        Store = new RegistryStore(_conn);
        var host = _rig.Hosts[0];
        await Store.PutAsync(Kinds.Nodes, host.AsNode("dev", cpuCores: 2, memoryBytes: 1L << 30));

        _watcher = new RegistryWatcher(_conn, NullLogger<RegistryWatcher>.Instance);
        _watcher.Start();
        _agent = new NodeAgent(Store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = host.Endpoint }),
            new AgentOptions { Node = $"h{host.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
            NullLogger<NodeAgent>.Instance);
        _agentRun = Task.Run(() => _agent.RunAsync(_stop.Token));
        await Eventually.True(() => _watcher.Current.IsNodeAlive($"h{host.Index}"), TimeSpan.FromSeconds(15), "the agent's heartbeat");

        var deployer = new Deployer(Store, e => new DockerEngine(e), NullLogger<Deployer>.Instance);
        var deployed = await deployer.DeployAsync(new DeploySpec
        {
            App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 2,
            Command = ["sleep", "1000000"],
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" }, MemoryRequest = 32L << 20, MemoryLimit = 64L << 20,
        });
        Assert.True(deployed.Ok, deployed.Error ?? string.Join("; ", deployed.Instances.Select(i => i.Error)));
        var ids = deployed.Instances.Select(i => i.WorkloadId!).ToList();
        await Eventually.True(() => ids.All(_watcher.Current.IsLive), TimeSpan.FromSeconds(30), "both instances live");
        Instances = ids.Select(id => new DeployedInstance(id, _watcher.Current.Workloads[id].Record!.Ident))
            .OrderBy(i => i.Ident, StringComparer.Ordinal).ToList();

        // The first instance gets the host's sftp-server (and the libc it needs), as an image with OpenSSH would have it.
        var first = Instances[0].Id;
        await host.DockerAsync(["exec", first, "mkdir", "-p", "/usr/lib/openssh", "/lib/x86_64-linux-gnu", "/lib64"]);
        if (!File.Exists(SftpFiles[0])) throw new ToolMissingException("sftp-server", "openssh-sftp-server");
        foreach (var file in SftpFiles) await host.DockerAsync(["cp", "-L", file, $"{first}:{file}"]);
        await host.DockerAsync(
            ["exec", first, "sh", "-c", "grep -q ^root: /etc/passwd 2>/dev/null || echo root:x:0:0:root:/root:/bin/sh >> /etc/passwd"]);

        OpsKey = await Client.KeyAsync("ed25519", "ops");
        AuditorKey = await Client.KeyAsync("ecdsa", "auditor");
        StrangerKey = await Client.KeyAsync("rsa", "stranger");
        await Store.PutAsync(Kinds.SshUsers, new SshUser
        {
            Name = "ops", Keys = [OpenSshClient.PublicKeyLine(OpsKey)], Apps = new() { ["hello"] = new SshAppAccess { Shell = true } },
        });
        await Store.PutAsync(Kinds.SshUsers, new SshUser
        {
            Name = "auditor", Keys = [OpenSshClient.PublicKeyLine(AuditorKey)],
            Apps = new() { ["hello"] = new SshAppAccess { Shell = false, User = "1234:1234" } },
        });
        await Store.PutAsync(Kinds.SshUsers, new SshUser
        {
            Name = "stranger", Keys = [OpenSshClient.PublicKeyLine(StrangerKey)], Apps = new() { ["billing"] = new SshAppAccess() },
        });

        // A user CA the gateway trusts: certificates it signs log in without their key being listed.
        CaKey = Path.Combine(Client.Dir, "user_ca");
        await Shell.RunAsync(Tools.Find("ssh-keygen", "openssh-client"), ["-q", "-t", "ed25519", "-N", "", "-C", "user-ca", "-f", CaKey]);

        Port = Ports.FreeTcp();
        HttpPort = Ports.FreeTcp();
        AuditPath = Path.Combine(Client.Dir, "audit.jsonl");
        _gateway = MimironHost.Create(["--Registry:Endpoints", _etcd.Url, "--Registry:Prefix", Prefix, "--Ssh:Port", Port.ToString(),
            "--Ssh:HostKeyDirectory", Path.Combine(Client.Dir, "hostkeys"), "--Ssh:AuditLog", AuditPath,
            "--Ssh:UserCaKeys:0", OpenSshClient.PublicKeyLine(CaKey), "--Http:Urls", $"http://127.0.0.1:{HttpPort}"],
            l => l.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
        await _gateway.StartAsync();
        var gateway = _gateway.Services.GetRequiredService<GatewayService>();
        HostKeyLines = gateway.HostKeys.Select(k => k.PublicKey.ToOpenSsh()).ToList();
        Client.TrustHost(Port, HostKeyLines);
        await Eventually.True(() => _gateway.Services.GetRequiredService<RegistryWatcher>().Current.SshUsers.Count == 3,
            TimeSpan.FromSeconds(10), "the gateway sees the users");
    }

    public Task<OpenSshClient.Result> Ssh(
        string login, string key, string? command, byte[]? stdin = null, bool tty = false, params string[] options) =>
        Client.RunAsync(Port, login, key, command, options, stdin, tty, TimeSpan.FromMinutes(2));

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>Another gateway on the same registry, with extra settings (e.g. session limits); stop it when done.</summary>
    public async Task<(WebApplication Host, int Port)> StartGatewayAsync(ILoggerProvider logs, params string[] settings)
    {
        var port = Ports.FreeTcp();
        var host = MimironHost.Create(["--Registry:Endpoints", _etcd.Url, "--Registry:Prefix", Prefix, "--Ssh:Port", port.ToString(),
            "--Ssh:HostKeyDirectory", Path.Combine(Client.Dir, "hostkeys"), "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}",
            .. settings],
            l => l.SetMinimumLevel(LogLevel.Debug).AddProvider(logs));
        await host.StartAsync();
        await Eventually.True(() => host.Services.GetRequiredService<RegistryWatcher>().Current.SshUsers.Count >= 3,
            TimeSpan.FromSeconds(10), "the second gateway sees the users");
        return (host, port);
    }

    public async Task DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.StopAsync();
            await _gateway.DisposeAsync();
        }
        await _stop.CancelAsync();
        if (_agentRun is not null) await _agentRun;
        if (_agent is not null) await _agent.DisposeAsync();
        if (_watcher is not null) await _watcher.DisposeAsync();
        if (_rig is not null) await _rig.DisposeAsync();
        await _etcd.DisposeAsync();
    }

    public void Dispose()
    {
        Client.Dispose();
        _stop.Dispose();
        _conn?.Dispose();
    }
}

public sealed record DeployedInstance(string Id, string Ident);
