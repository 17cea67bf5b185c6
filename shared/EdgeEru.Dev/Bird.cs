namespace EdgeEru.Dev;

/// <summary>
/// A BIRD 2 BGP speaker of a routed rig, as Calico runs one per host: in a simulated host's namespace it announces
/// the host's blocks (Docker's bridges on them) and installs the other hosts' blocks as routes; in the root namespace
/// (the edge: agents, eru-lb, eru-dns, eru-ssh) it reflects routes between the hosts and installs every block in a
/// table of the rig's own, so that several rigs on one machine never touch each other's routes. Its config, control
/// socket and pid file live in the directory given to <see cref="StartAsync"/>.
/// </summary>
public sealed class Bird : IAsyncDisposable
{
    /// <summary>One private AS for the whole rig (iBGP, Calico's default 64512).</summary>
    public const int As = 64512;

    private readonly string? _netns;
    private readonly string _conf;
    private ChildProcess? _process;

    private Bird(string? netns, string conf, string socket)
    {
        _netns = netns;
        _conf = conf;
        Socket = socket;
    }

    /// <summary>The control socket: <c>birdc -s SOCKET show protocols</c>.</summary>
    public string Socket { get; }

    /// <summary>Whether bird runs (a fault may have killed it; eru dev then starts it again).</summary>
    public bool Running => _process is { HasExited: false };

    /// <summary>Starts bird (in <paramref name="netns"/>, or the root namespace when null) and waits for its control socket.</summary>
    public static async Task<Bird> StartAsync(string? netns, string dir, string config)
    {
        Tools.Find("birdc", "bird2");
        Directory.CreateDirectory(dir);
        var conf = Path.Combine(dir, "bird.conf");
        await File.WriteAllTextAsync(conf, config);
        var speaker = new Bird(netns, conf, Path.Combine(dir, "bird.ctl"));
        await speaker.StartAgainAsync();
        return speaker;
    }

    /// <summary>Starts bird (again, with the same config: its sessions come up and its routes are installed anew).</summary>
    public async Task StartAgainAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        var bird = Tools.Find("bird", "bird2");
        string[] args = ["-f", "-c", _conf, "-s", Socket, "-P", Path.ChangeExtension(_conf, "pid")];
        // nsenter, not `ip netns exec` (which remounts /sys), as for dockerd.
        var process = _process = _netns is null ? ChildProcess.Start(bird, args)
            : ChildProcess.Start(Tools.Find("nsenter", "util-linux"), [$"--net=/var/run/netns/{_netns}", bird, .. args]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"bird {_conf} exited with {process.ExitCode}:\n{process.OutputTail()}");
            try
            {
                if (File.Exists(Socket)) await CommandAsync("show", "status");
                return;
            }
            catch (CommandFailedException) when (DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow > deadline)
            {
                await process.DisposeAsync();
                throw new TimeoutException($"bird {_conf} did not answer on {Socket} within 20 s:\n{process.OutputTail()}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>A birdc command, e.g. <c>show protocols</c>.</summary>
    public Task<string> CommandAsync(params string[] args) =>
        Shell.RunAsync(Tools.Find("birdc", "bird2"), ["-s", Socket, .. args], timeout: TimeSpan.FromSeconds(10));

    /// <summary>How many BGP sessions a <c>birdc show protocols</c> listing shows Established.</summary>
    public static int Established(string showProtocols) => showProtocols.Split('\n')
        .Count(l => l.Contains(" BGP ", StringComparison.Ordinal) && l.Contains("Established", StringComparison.Ordinal));

    /// <summary>
    /// A host's speaker: one session to the edge's (a route reflector, so adding a host changes no other host), its
    /// connected routes inside <paramref name="pool"/> announced (Docker's bridge on the host's block), the blocks it
    /// learns installed in the namespace's main table.
    /// </summary>
    public static string HostConfig(string address, string edgeAddress, string pool) => $$"""
        router id {{address}};
        define POOL = [ {{pool}}+ ];
        protocol device { scan time 2; }
        protocol direct { ipv4 { import where net ~ POOL; }; }
        protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
        protocol bgp edge {
          local {{address}} as {{As}};
          neighbor {{edgeAddress}} as {{As}};
          {{Timers}}
          ipv4 { gateway direct; import where net ~ POOL; export where source = RTS_DEVICE && net ~ POOL; next hop self; };
        }

        """;

    /// <summary>
    /// The edge's speaker: a route reflector for every host, the blocks installed in kernel table <paramref name="table"/>
    /// (the rig's own: a rule sends the pool there), nothing of the machine's own routes announced.
    /// </summary>
    public static string EdgeConfig(string address, IEnumerable<(string Name, string Address)> hosts, string pool, int table) => $$"""
        router id {{address}};
        define POOL = [ {{pool}}+ ];
        protocol device { scan time 2; }
        protocol kernel { kernel table {{table}}; ipv4 { import none; export where source = RTS_BGP; }; }
        template bgp host {
          local {{address}} as {{As}};
          rr client;
          {{Timers}}
          ipv4 { gateway direct; import where net ~ POOL; export where net ~ POOL; };
        }
        {{string.Join("\n", hosts.Select(h => $"protocol bgp {h.Name} from host {{ neighbor {h.Address} as {As}; }}"))}}

        """;

    /// <summary>
    /// Sessions on one bridge (direct), bound to the session's own address so that the rigs' root speakers share
    /// port 179; short timers: a dead host's blocks are withdrawn within the hold time.
    /// </summary>
    private const string Timers =
        "direct; strict bind yes; connect delay time 1; connect retry time 2; error wait time 1, 4; hold time 9;";

    /// <summary>Stops bird with SIGTERM: it withdraws its routes from the kernel on the way out.</summary>
    public ValueTask DisposeAsync() => _process?.DisposeAsync() ?? ValueTask.CompletedTask;
}
