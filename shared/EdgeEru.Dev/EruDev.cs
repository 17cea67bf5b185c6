using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EdgeEru.Dev;

/// <summary>
/// A whole platform started the way a newcomer starts it, <c>./eru dev</c> from a checkout, on ports and a state
/// directory of its own (so it runs beside a developer's own). Users of it (the scenario tests, the self-hosting
/// benchmark) then only have what a user has: the printed addresses, the <c>eru</c> CLI and the tokens.
/// </summary>
public sealed partial class EruDev : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _root;
    private ChildProcess? _dev;

    private EruDev(string root) => _root = root;

    public string StateDir { get; } = Directory.CreateTempSubdirectory("eru-dev-").FullName;
    public string KeyFile => Path.Combine(StateDir, "..", Path.GetFileName(StateDir) + "-key");
    public string SshUser { get; } = "scenario";
    public int EtcdPort { get; } = FreeTcpRange(2 * EtcdCluster.MaxMembers); // client and peer port of each member
    public int DnsPort { get; } = Ports.FreeTcp();
    public int LbPort { get; } = Ports.FreeTcp();
    public int LbAdminPort { get; } = Ports.FreeTcp();
    public int LbTlsPort { get; } = Ports.FreeTcp();
    public int CorePort { get; } = Ports.FreeTcp();
    public int ConsolePort { get; } = Ports.FreeTcp();

    /// <summary>The console's address as printed, with the token in its fragment (<c>http://…/console#token=…</c>).</summary>
    public string ConsoleUrl { get; private set; } = "";
    public int SshPort { get; } = Ports.FreeTcp();
    public int AgentHttpPort { get; } = FreeTcpRange(DockerRig.MaxHosts);
    public string EtcdUrl => $"http://127.0.0.1:{EtcdPort}";

    /// <summary>Every etcd member's client URL, comma separated, as printed (the first member's before it is up).</summary>
    public string EtcdEndpoints { get; private set; } = "";
    public string Prefix { get; } = "/scenario";

    /// <summary>Node name → Docker endpoint, as printed.</summary>
    public Dictionary<string, string> Nodes { get; } = [];

    /// <summary>With --network routed, each BGP speaker as printed: "edge" or a node → its birdc socket and namespace.</summary>
    public Dictionary<string, (string Socket, string? Netns)> Bgp { get; } = [];

    /// <summary>The self-hosted edge's replicas as printed: (entrypoint, address).</summary>
    public List<(string Entrypoint, IPAddress Address)> Edge { get; } = [];

    public string Output => string.Join('\n', _output.TakeLast(80));

    /// <summary>Every line printed so far.</summary>
    public IEnumerable<string> Lines => _output;

    /// <summary>
    /// Starts <c>./eru dev</c> with <paramref name="clusterArgs"/> (e.g. --hosts 3) from the checkout at <paramref name="root"/>.
    /// </summary>
    public static async Task<EruDev> StartAsync(string root, IEnumerable<string> clusterArgs, Action<string>? onLine = null)
    {
        var dev = new EruDev(root);
        try
        {
            await dev.StartAsync(clusterArgs, onLine);
            return dev;
        }
        catch
        {
            await dev.DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync(IEnumerable<string> clusterArgs, Action<string>? onLine)
    {
        await Shell.RunAsync(Tools.Find("ssh-keygen", "openssh-client"),
            ["-q", "-t", "ed25519", "-N", "", "-C", "scenario", "-f", KeyFile]);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _dev = ChildProcess.Start("bash",
        [
            Path.Combine(_root, "eru"), "dev", .. clusterArgs, "--state-dir", StateDir, "--prefix", Prefix,
            "--etcd-port", Text(EtcdPort), "--dns-port", Text(DnsPort), "--dns-http-port", Text(Ports.FreeTcp()),
            "--lb-port", Text(LbPort), "--lb-admin-port", Text(LbAdminPort), "--lb-tls-port", Text(LbTlsPort),
            "--lb-http-port", Text(Ports.FreeTcp()), "--core-port", Text(CorePort), "--core-http-port", Text(Ports.FreeTcp()),
            "--console-port", Text(ConsolePort), "--agent-http-port", Text(AgentHttpPort),
            "--ssh-port", Text(SshPort), "--ssh-http-port", Text(Ports.FreeTcp()), "--ssh-user", SshUser, "--ssh-key", KeyFile + ".pub",
        ], line =>
        {
            _output.Enqueue(line);
            onLine?.Invoke(line);
            if (NodeLine().Match(line) is { Success: true } m) lock (Nodes) Nodes[m.Groups[1].Value] = m.Groups[2].Value;
            if (EtcdLine().Match(line) is { Success: true } etcd) EtcdEndpoints = etcd.Groups[1].Value;
            if (ConsoleLine().Match(line) is { Success: true } console) ConsoleUrl = console.Groups[1].Value;
            if (BgpLine().Match(line) is { Success: true } b)
                lock (Bgp) Bgp[b.Groups[1].Value] = (b.Groups[2].Value, b.Groups[3].Success ? b.Groups[3].Value : null);
            if (EdgeLine().Match(line) is { Success: true } e)
                lock (Edge) Edge.Add((e.Groups[1].Value, IPAddress.Parse(e.Groups[2].Value)));
            if (line.StartsWith("EdgeEru dev cluster is up", StringComparison.Ordinal)) ready.TrySetResult();
        }, workingDirectory: _root);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(8); // a cold ./eru builds every service first
        while (!ready.Task.IsCompleted)
        {
            if (_dev.HasExited) throw new InvalidOperationException($"./eru dev exited with {_dev.ExitCode}:\n{Output}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"./eru dev was not up within 8 minutes:\n{Output}");
            await Task.Delay(200);
        }
        await Task.Delay(500); // the node lines follow the "is up" line
    }

    /// <summary>Runs <c>./eru ARGS</c> from the checkout, as a user would, with this cluster's addresses and tokens.</summary>
    /// <summary>The workloads of <paramref name="app"/> (all when null) as <c>eru ps --json</c> shows them.</summary>
    public async Task<List<DevWorkload>> PsAsync(string? app = null)
    {
        using var doc = JsonDocument.Parse(await EruAsync(app is null ? ["ps", "--json"] : ["ps", app, "--json"]));
        return [.. doc.RootElement.EnumerateArray().Select(w => new DevWorkload(w.GetProperty("name").GetString()!,
            w.GetProperty("id").GetString()!, w.GetProperty("entrypoint").GetString()!, w.GetProperty("ident").GetString()!,
            w.GetProperty("node").GetString()!,
            w.GetProperty("addresses").EnumerateObject().Select(a => a.Value.GetString()!).FirstOrDefault() ?? "",
            [.. w.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!)], w.GetProperty("live").GetBoolean())
        {
            Address6 = w.TryGetProperty("addresses6", out var six)
                ? six.EnumerateObject().Select(a => a.Value.GetString()!).FirstOrDefault() ?? "" : "",
        })];
    }

    public async Task<string> EruAsync(params string[] args) =>
        await Shell.RunAsync("bash", [Path.Combine(_root, "eru"), .. WithFlags(args)], workingDirectory: _root,
            timeout: TimeSpan.FromMinutes(5));

    /// <summary>Runs <c>./eru ARGS</c> and returns its exit code with its output (a job's code is the answer).</summary>
    public async Task<(int Code, string Output)> EruExitAsync(params string[] args)
    {
        try
        {
            return (0, await EruAsync(args));
        }
        catch (CommandFailedException ex)
        {
            return (ex.ExitCode, ex.Message);
        }
    }

    /// <summary>
    /// eru-dns's answers of <paramref name="type"/> for <paramref name="name"/> (with <paramref name="reverse"/>, the PTR of
    /// an address: dig -x), as dig prints them (+short), in order.
    /// </summary>
    public async Task<List<string>> DigAsync(string name, string type = "A", bool reverse = false) =>
        (await Shell.RunAsync(Tools.Find("dig", "bind9-dnsutils"),
            ["@127.0.0.1", "-p", DnsPort.ToString(CultureInfo.InvariantCulture), .. reverse ? ["-x", name] : new[] { name, type },
                "+short", "+time=1", "+tries=2"]))
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// A command through the SSH gateway as <see cref="SshUser"/> into <paramref name="target"/> (web.hello, an instance's
    /// name), with this cluster's key and the gateway's known host keys; its output (a failing command throws).
    /// </summary>
    public Task<string> SshAsync(string target, string command) =>
        Shell.RunAsync(Tools.Find("ssh", "openssh-client"), SshArgs(target, command, "127.0.0.1"), stdin: [],
            timeout: TimeSpan.FromSeconds(60));

    /// <summary>
    /// As <see cref="SshAsync"/>, to the gateway at <paramref name="at"/> (127.0.0.1, or ::1 over IPv6): the command's exit
    /// code and its output (or, when it failed, ssh's message).
    /// </summary>
    public async Task<(int Code, string Output)> SshExitAsync(string target, string command, string at = "127.0.0.1")
    {
        try
        {
            return (0, await Shell.RunAsync(Tools.Find("ssh", "openssh-client"), SshArgs(target, command, at), stdin: [],
                timeout: TimeSpan.FromSeconds(60)));
        }
        catch (CommandFailedException ex)
        {
            return (ex.ExitCode, ex.Message);
        }
    }

    private string[] SshArgs(string target, string command, string at) =>
    [
        "-p", Text(SshPort), "-i", KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", $"UserKnownHostsFile={Path.Combine(StateDir, "ssh-known-hosts")}", "-o", "StrictHostKeyChecking=yes",
        "-o", "ConnectTimeout=10", at.Contains(':', StringComparison.Ordinal) ? "-6" : "-4", $"{SshUser}~{target}@{at}", command,
    ];

    /// <summary>Docker's own CLI against a node's engine (for faults: kill a container).</summary>
    public Task<string> DockerAsync(string node, params string[] args) =>
        Shell.RunAsync(Tools.Find("docker", "docker.io"), ["-H", Nodes[node], .. args]);

    /// <summary>The cluster's addresses and tokens added to <paramref name="args"/>, before a "--" (a job's command follows it).</summary>
    private string[] WithFlags(string[] args)
    {
        var flags = args[0] switch
        {
            "ps" or "logs" or "ssh-user" or "dns" or "deploy" or "replace" or "rm" or "node" or "pod" or "capacity" or "run" or "cp"
                or "secret" or "start" or "stop" or "restart" or "build" =>
                new[] { "--core", $"http://127.0.0.1:{CorePort}", "--token", Token("core") },
            "lb" => ["--admin", $"http://127.0.0.1:{LbAdminPort}", "--token", Token("lb")],
            _ => [],
        };
        var end = Array.IndexOf(args, "--");
        return end < 0 ? [.. args, .. flags] : [.. args[..end], .. flags, .. args[end..]];
    }

    public string Token(string service) => File.ReadAllText(Path.Combine(StateDir, service + ".token")).Trim();

    /// <summary>The PID of a host's agent (eru dev keeps it in its state directory).</summary>
    /// <summary>The pid of etcd member <paramref name="member"/> (from 1), as eru dev wrote it.</summary>
    public int EtcdPid(int member) => Pid(member == 1 ? "etcd.pid" : $"etcd-{member}.pid");

    public int AgentPid(int host) => Pid($"agent-h{host}.pid");

    /// <summary>A pid eru dev wrote into its state directory (a supervised part's changes when it is started again).</summary>
    public int Pid(string file) => int.Parse(File.ReadAllText(Path.Combine(StateDir, file)).Trim(), CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        if (_dev is not null)
        {
            await _dev.StopAsync(grace: TimeSpan.FromSeconds(90)); // Ctrl-C: eru dev removes hosts, containers and namespaces
            await _dev.DisposeAsync();
        }
        try
        {
            Directory.Delete(StateDir, recursive: true);
            File.Delete(KeyFile);
            File.Delete(KeyFile + ".pub");
        }
        catch (IOException)
        {
        }
    }

    private static string Text(int n) => n.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^\s+etcd\s+(\S+)\s+prefix ")]
    private static partial Regex EtcdLine();

    [GeneratedRegex(@"^\s+console\s+(http://\S+/console#token=\S+)")]
    private static partial Regex ConsoleLine();

    [GeneratedRegex(@"^\s+node (\S+)\s+(\S+)\s+agent ")]
    private static partial Regex NodeLine();

    [GeneratedRegex(@"^\s+bgp (\S+)\s+birdc -s (\S+) show protocols(?:\s+\(netns (\S+)\))?")]
    private static partial Regex BgpLine();

    [GeneratedRegex(@"^\s+(dns|lb)\s+(?:http://)?([0-9.]+)(?::53)?\s+workload ")]
    private static partial Regex EdgeLine();

    private static int FreeTcpRange(int n)
    {
        for (var i = 0; i < 50; i++)
        {
            var p = Ports.FreeTcp();
            if (Enumerable.Range(p + 1, n - 1).All(IsFree)) return p;
        }
        throw new InvalidOperationException($"no {n} adjacent free loopback ports");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>A workload as <c>eru ps --json</c> shows it (its first IPv4 address, "" when none).</summary>
public sealed record DevWorkload(string Name, string Id, string Entrypoint, string Ident, string Node, string Address,
    IReadOnlyList<string> Tags, bool Live)
{
    /// <summary>Its first IPv6 address ("" when none).</summary>
    public string Address6 { get; init; } = "";
}
