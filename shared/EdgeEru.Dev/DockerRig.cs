using System.Formats.Tar;
using System.Net.Sockets;
using EdgeEru.Registry.Model;

namespace EdgeEru.Dev;

/// <summary>How a rig's containers are reached: one L2 segment, or routes (docs/deploy.md, routed networks).</summary>
public enum RigNetwork
{
    /// <summary>A macvlan network <c>eru-mv</c> on every host's veth: containers of all hosts share the bridge's L2.</summary>
    Macvlan,

    /// <summary>
    /// Containers on each host's own bridge network <c>eru-routed</c> (made by Core on the host's block of the pool),
    /// reached through their host by routes that bird spreads over BGP; the hosts' veths are only an underlay.
    /// </summary>
    Routed,
}

/// <summary>
/// Simulated Docker hosts on one machine: each a network namespace on a shared bridge, with its own
/// dockerd (vfs storage, no iptables, no default bridge) and a dual-stack macvlan network <c>eru-mv</c> with a
/// disjoint address range per host in both families, or (<see cref="RigNetwork.Routed"/>) a BGP speaker per host and one
/// in the root namespace. A rig takes one of eight slots of 198.18.0.0/15 (a /18 each, beside the IPv6 ULA /64
/// <c>fd65:7275:0:{slot}::/64</c>: "eru" in hex), held
/// by a lock file, so rigs of several test runs or an <c>eru dev</c> can run side by side; the root
/// namespace reaches containers through the bridge. A busybox image is imported offline on each host.
/// Needs root, iproute2, docker.io and busybox-static (and bird2 for a routed rig).
/// </summary>
public sealed class DockerRig : IAsyncDisposable
{
    public const string Network = "eru-mv";

    /// <summary>The routed network's name on every host (a host-local bridge per host).</summary>
    public const string RoutedNetwork = "eru-routed";
    public const string Image = "edgeeru/busybox:test";
    public const int MaxHosts = 12;
    private const int Slots = 8;
    private readonly string _id;
    private readonly string _dir;
    private readonly FileStream _slotLock;
    private readonly List<DockerHost> _hosts = [];
    private Bird? _edgeBird;

    private DockerRig(string id, string dir, int slot, FileStream slotLock, RigNetwork mode)
    {
        _id = id;
        _dir = dir;
        Slot = slot;
        _slotLock = slotLock;
        Mode = mode;
    }

    public RigNetwork Mode { get; }

    /// <summary>The Docker network containers of this rig's hosts attach to.</summary>
    public string ContainerNetwork => Mode == RigNetwork.Routed ? RoutedNetwork : Network;

    /// <summary>
    /// A routed rig's address pool: the first /19 of the slot (the hosts' and the bridge's addresses lie outside it),
    /// for Core to cut into blocks.
    /// </summary>
    public string RoutedPool => $"{At(0)}/19";

    /// <summary>
    /// The prefix of the bridge's and hosts' addresses: the whole /18 with macvlan (containers share it), a /24 with
    /// routes (the underlay: no container address is on-link, each is reached through its host).
    /// </summary>
    internal int UnderlayPrefix => Mode == RigNetwork.Routed ? 24 : 18;

    /// <summary>The root namespace's BGP speaker of a routed rig (null with macvlan).</summary>
    public Bird? EdgeBird => _edgeBird;

    /// <summary>The kernel table the root namespace's speaker installs blocks in, and the priority of the rule to it.</summary>
    public int RouteTable => RouteTableOf(Slot);

    private static int RouteTableOf(int slot) => 18180 + slot;

    public string Bridge => "br-" + _id;
    public IReadOnlyList<DockerHost> Hosts => _hosts;

    /// <summary>Which /18 of 198.18.0.0/15 this rig owns.</summary>
    public int Slot { get; }

    /// <summary>The rig's subnet: hosts' ranges, host addresses and the bridge all lie in it.</summary>
    public string Subnet => $"{At(0)}/18";

    /// <summary>The rig's IPv6 subnet (a ULA /64): hosts' IPv6 ranges, their addresses and the bridge's.</summary>
    public string Subnet6 => $"{At6(0, 0)}/64";

    /// <summary>The root namespace's address on the bridge (the way in to every container).</summary>
    public string BridgeAddress => At((63 << 8) + 254);
    internal string Gateway => At((63 << 8) + 253);

    /// <summary>The root namespace's IPv6 address on the bridge.</summary>
    public string BridgeAddress6 => At6(0xff00, 0xfffe);
    internal string Gateway6 => At6(0xff00, 0xfffd);

    /// <summary>An address of this rig's IPv6 /64 whose last two groups are <paramref name="high"/>:<paramref name="low"/>.</summary>
    internal string At6(int high, int low) => System.Net.IPAddress.Parse($"fd65:7275:0:{Slot:x}::{high:x}:{low:x}").ToString();

    /// <summary>The address <paramref name="offset"/> past the start of this rig's /18.</summary>
    internal string At(int offset)
    {
        var value = (198u << 24) + (18u << 16) + (uint)(Slot << 14) + (uint)offset;
        return $"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}";
    }

    /// <summary>
    /// Starts <paramref name="hosts"/> hosts. <paramref name="idPrefix"/> tells rigs apart in names: "e" for tests, "d" for eru dev.
    /// <paramref name="dockerdArgs"/> adds arguments to a host's dockerd (e.g. a TLS listener on its address).
    /// </summary>
    public static async Task<DockerRig> StartAsync(
        int hosts, char idPrefix = 'e', Func<DockerHost, IEnumerable<string>>? dockerdArgs = null, RigNetwork network = RigNetwork.Macvlan)
    {
        if (hosts is < 1 or > MaxHosts) throw new ArgumentOutOfRangeException(nameof(hosts), $"1 to {MaxHosts} simulated hosts");
        Tools.Find("ip", "iproute2");
        Tools.Find("nsenter", "util-linux");
        Tools.Find("dockerd", "docker.io");
        Tools.Find("docker", "docker.io");
        Tools.Find("busybox", "busybox-static");
        if (network == RigNetwork.Routed)
        {
            Tools.Find("bird", "bird2");
            Tools.Find("birdc", "bird2");
            Tools.Find("sysctl", "procps");
        }
        var id = idPrefix + Guid.NewGuid().ToString("N")[..6]; // interface names are at most 15 bytes
        var (slot, slotLock) = await TakeSlotAsync(id);
        var dir = Path.Combine("/tmp", "eru-rig-" + id);
        Directory.CreateDirectory(dir);
        var rig = new DockerRig(id, dir, slot, slotLock, network);
        try
        {
            await Ip("link", "add", rig.Bridge, "type", "bridge");
            await Ip("link", "set", rig.Bridge, "up");
            await Ip("addr", "add", $"{rig.BridgeAddress}/{rig.UnderlayPrefix}", "dev", rig.Bridge);
            if (rig.Mode == RigNetwork.Macvlan)
                await Ip("addr", "add", rig.BridgeAddress6 + "/64", "dev", rig.Bridge, "nodad"); // usable at once, no DAD wait
            var image = BusyboxImage();
            for (var i = 1; i <= hosts; i++) rig._hosts.Add(await DockerHost.StartAsync(rig, i, dir, image, dockerdArgs));
            if (network == RigNetwork.Routed) await rig.StartEdgeRoutingAsync();
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    internal string Id => _id;

    /// <summary>
    /// The root namespace's part of a routed rig: the pool's addresses are looked up in the rig's own table (a rule),
    /// where bird installs the hosts' blocks; the rest of the pool is unreachable there, so that no packet for a
    /// container address without a route leaves by the machine's default route.
    /// </summary>
    private async Task StartEdgeRoutingAsync()
    {
        var table = RouteTable.ToString();
        await Ip("route", "add", "unreachable", RoutedPool, "table", table);
        await Ip("rule", "add", "to", RoutedPool, "lookup", table, "pref", table);
        _edgeBird = await Bird.StartAsync(null, Path.Combine(_dir, "edge-bird"),
            Bird.EdgeConfig(BridgeAddress, _hosts.Select(h => ($"h{h.Index}", h.Address)), RoutedPool, RouteTable));
    }

    /// <summary>Removes the rule and the table of a routed rig in <paramref name="slot"/> (whoever left them).</summary>
    private static async Task RemoveEdgeRoutingAsync(int slot)
    {
        var table = RouteTableOf(slot).ToString();
        try
        {
            while (true) await Ip("rule", "del", "pref", table);
        }
        catch (CommandFailedException)
        {
            // No (more) rule at that priority.
        }
        try
        {
            await Ip("route", "flush", "table", table);
        }
        catch (CommandFailedException)
        {
            // The table was never made.
        }
    }

    /// <summary>
    /// Takes the first free slot. The lock is an exclusive advisory lock on an open file, so it dies
    /// with its process; whatever a dead owner left behind in the slot (dockerd, shims, mounts,
    /// namespaces, bridge) is swept before the slot is reused.
    /// </summary>
    private static async Task<(int Slot, FileStream Lock)> TakeSlotAsync(string id)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (true)
        {
            for (var slot = 0; slot < Slots; slot++)
            {
                FileStream slotLock;
                try
                {
                    slotLock = new FileStream($"/tmp/eru-rig-slot{slot}.lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException)
                {
                    continue; // held by a live rig
                }
                var owner = $"/tmp/eru-rig-slot{slot}.owner";
                if (File.Exists(owner)) await CleanAsync(File.ReadAllText(owner).Trim());
                await RemoveEdgeRoutingAsync(slot);
                File.WriteAllText(owner, id);
                return (slot, slotLock);
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"all {Slots} Docker rig slots stayed busy for 10 minutes");
            await Task.Delay(1000);
        }
    }

    /// <summary>Removes what the rig <paramref name="id"/> left behind when its process died.</summary>
    private static async Task CleanAsync(string id)
    {
        if (!System.Text.RegularExpressions.Regex.IsMatch(id, "^[a-z][0-9a-f]{6}$")) return;
        var ours = new System.Text.RegularExpressions.Regex($"/tmp/(eru-rig-{id}|{id}h[0-9]+)");
        await SweepAsync(ours.IsMatch);
        var names = new System.Text.RegularExpressions.Regex($"^{id}h[0-9]+$");
        foreach (var ns in (await Ip("netns", "list")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                     .Select(l => l.Split(' ')[0]).Where(n => names.IsMatch(n)))
            await Ip("netns", "del", ns);
        foreach (var link in (await Ip("-o", "link", "show", "type", "bridge")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                     .Select(l => l.Split(':')[1].Trim()).Where(b => b == "br-" + id))
            await Ip("link", "del", link);
        foreach (var dir in Directory.EnumerateDirectories("/tmp").Where(d => ours.IsMatch(d)))
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    internal static Task<string> Ip(params string[] args) => Shell.RunAsync("ip", args);

    /// <summary>
    /// Kills every process whose command line names a path <paramref name="ours"/> matches (dockerd,
    /// containerd, shims left behind), then lazily unmounts every mount point it matches, innermost first.
    /// </summary>
    internal static async Task SweepAsync(Func<string, bool> ours)
    {
        foreach (var pid in Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(p => p!.All(char.IsAsciiDigit)))
        {
            try
            {
                if (ours(File.ReadAllText($"/proc/{pid}/cmdline")))
                    System.Diagnostics.Process.GetProcessById(int.Parse(pid!)).Kill(entireProcessTree: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // Gone meanwhile, or not ours to read.
            }
        }
        foreach (var mount in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(ours).Reverse())
        {
            try
            {
                await Shell.RunAsync("umount", ["-l", mount]);
            }
            catch (CommandFailedException)
            {
            }
        }
    }

    /// <summary>Imports the busybox test image into an engine (one that is not a rig host: eru dev --docker-host).</summary>
    public static async Task ImportImageAsync(string endpoint) =>
        await Shell.RunAsync(Tools.Find("docker", "docker.io"), ["-H", endpoint, "import", "-", Image], BusyboxImage());

    /// <summary>A root filesystem of busybox and its applets, as a tar for `docker import`.</summary>
    private static byte[] BusyboxImage()
    {
        using var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "bin/") { Mode = (UnixFileMode)0b111_101_101 });
            tar.WriteEntry(Tools.Find("busybox", "busybox-static"), "bin/busybox");
            foreach (var applet in new[]
                     { "sh", "httpd", "ls", "cat", "echo", "sleep", "hostname", "wget", "mkdir", "true", "false", "ps", "kill", "rm" })
                tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/" + applet) { LinkName = "busybox" });
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "tmp/") { Mode = (UnixFileMode)0b111_111_111 });
        }
        return ms.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var h in _hosts) await h.DisposeAsync();
        if (_edgeBird is not null) await _edgeBird.DisposeAsync();
        if (Mode == RigNetwork.Routed) await RemoveEdgeRoutingAsync(Slot);
        try
        {
            await Ip("link", "del", Bridge);
        }
        catch (CommandFailedException)
        {
            // Never created, or already gone.
        }
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        File.Delete($"/tmp/eru-rig-slot{Slot}.owner");
        await _slotLock.DisposeAsync();
    }
}

/// <summary>One simulated host: a network namespace with eth0 on the rig's bridge and its own dockerd.</summary>
public sealed class DockerHost : IAsyncDisposable
{
    private ChildProcess? _dockerd;
    private Bird? _bird;
    private string[] _dockerdArgs = [];

    private readonly DockerRig _rig;

    private DockerHost(DockerRig rig, string name, int index, string address, string socketPath, string dir)
    {
        _rig = rig;
        Name = name;
        Index = index;
        Address = address;
        SocketPath = socketPath;
        Dir = dir;
    }

    public string Name { get; }
    public int Index { get; }

    /// <summary>The host's own address on the bridge (outside every host's container range).</summary>
    public string Address { get; }
    public string SocketPath { get; }
    public string Endpoint => "unix://" + SocketPath;
    private string Dir { get; }

    /// <summary>The host's BGP speaker in a routed rig (null with macvlan).</summary>
    public Bird? Bird => _bird;

    /// <summary>Container addresses this host's macvlan network hands out: a /22, disjoint per host.</summary>
    public string IpRange => $"{_rig.At((Index - 1) << 10)}/22";

    /// <summary>The IPv6 addresses this host's macvlan network hands out: a /112, disjoint per host.</summary>
    public string IpRange6 => $"{_rig.At6(Index, 0)}/112";

    /// <summary>The host's own IPv6 address on the bridge.</summary>
    public string Address6 => _rig.At6(0xff00, Index);

    /// <summary>The <paramref name="n"/>-th IPv6 address of this host's container range (for fixed-address tests).</summary>
    public string ContainerAddress6(int n) =>
        n is >= 1 and < 65535 ? _rig.At6(Index, n) : throw new ArgumentOutOfRangeException(nameof(n), "1 to 65534");

    /// <summary>The <paramref name="n"/>-th address of this host's container range (for fixed-address tests).</summary>
    public string ContainerAddress(int n) =>
        n is >= 1 and < 1023 ? _rig.At(((Index - 1) << 10) + n) : throw new ArgumentOutOfRangeException(nameof(n), "1 to 1022");

    internal static async Task<DockerHost> StartAsync(
        DockerRig rig, int index, string rigDir, byte[] image, Func<DockerHost, IEnumerable<string>>? extraArgs)
    {
        var ns = $"{rig.Id}h{index}";
        var dir = Path.Combine(rigDir, "h" + index);
        Directory.CreateDirectory(dir);
        var host = new DockerHost(rig, ns, index, rig.At((63 << 8) + index), Path.Combine(dir, "d.sock"), dir);
        await DockerRig.Ip("netns", "add", ns);
        await DockerRig.Ip("link", "add", "v" + ns, "type", "veth", "peer", "name", "p" + ns);
        await DockerRig.Ip("link", "set", "v" + ns, "master", rig.Bridge, "up");
        await DockerRig.Ip("link", "set", "p" + ns, "netns", ns);
        await DockerRig.Ip("-n", ns, "link", "set", "p" + ns, "name", "eth0");
        await DockerRig.Ip("-n", ns, "link", "set", "eth0", "up");
        await DockerRig.Ip("-n", ns, "link", "set", "lo", "up");
        await DockerRig.Ip("-n", ns, "addr", "add", $"{host.Address}/{rig.UnderlayPrefix}", "dev", "eth0");
        if (rig.Mode == RigNetwork.Macvlan) await DockerRig.Ip("-n", ns, "addr", "add", host.Address6 + "/64", "dev", "eth0", "nodad");

        host._dockerdArgs = [.. extraArgs?.Invoke(host) ?? []];
        await host.StartDockerdAsync();
        await host.DockerAsync(["import", "-", DockerRig.Image], image);
        if (rig.Mode == RigNetwork.Routed)
        {
            // A router: containers' packets pass through the host. Core makes the network on the host's block later.
            await Shell.RunAsync(Tools.Find("nsenter", "util-linux"),
                [$"--net=/var/run/netns/{ns}", Tools.Find("sysctl", "procps"), "-qw", "net.ipv4.ip_forward=1"]);
            host._bird = await Bird.StartAsync(ns, Path.Combine(dir, "bird"),
                Bird.HostConfig(host.Address, rig.BridgeAddress, rig.RoutedPool));
        }
        else
            await host.DockerAsync(["network", "create", "-d", "macvlan", "--subnet", rig.Subnet, "--ip-range", host.IpRange,
                "--gateway", rig.Gateway, "--ipv6", "--subnet", rig.Subnet6, "--ip-range", host.IpRange6, "--gateway", rig.Gateway6,
                "-o", "parent=eth0", DockerRig.Network]);
        return host;
    }

    /// <summary>Whether this host's dockerd runs (a fault test may have killed it).</summary>
    public bool DockerdRunning => _dockerd is { HasExited: false };

    /// <summary>Starts this host's dockerd (again: its data root keeps images, networks and containers) and waits for it.</summary>
    public async Task StartDockerdAsync()
    {
        if (_dockerd is { } old)
        {
            if (!old.HasExited) return;
            await old.DisposeAsync();
        }
        // nsenter, not `ip netns exec`: that remounts /sys and dockerd then finds no cgroups.
        _dockerd = ChildProcess.Start(Tools.Find("nsenter", "util-linux"),
        [
            $"--net=/var/run/netns/{Name}", Tools.Find("dockerd", "docker.io"),
            "--data-root", Path.Combine(Dir, "data"), "--exec-root", $"/tmp/{Name}", // unix socket paths are limited to 108 bytes
            "-H", Endpoint, "--pidfile", Path.Combine(Dir, "d.pid"),
            "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
            .. _dockerdArgs,
        ]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await PingAsync())
        {
            if (_dockerd.HasExited) throw new InvalidOperationException($"dockerd of {Name} exited:\n{_dockerd.OutputTail()}");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"dockerd of {Name} did not answer within 60 s:\n{_dockerd.OutputTail()}");
            await Task.Delay(50);
        }
    }

    /// <summary>The pid of this host's dockerd (for fault tests), or null when it is not running.</summary>
    public int? DockerdPid => DockerdRunning ? _dockerd!.Id : null;

    /// <summary>This host as a registry node (<c>h{index}</c>) of <paramref name="pod"/>, attachable to the rig's network.</summary>
    public Node AsNode(string pod, int cpuCores, long memoryBytes) => new()
    {
        Name = $"h{Index}",
        Pod = pod,
        Endpoint = new DockerEndpoint { Address = Endpoint },
        Address = Address,
        Address6 = _rig.Mode == RigNetwork.Macvlan ? Address6 : null, // a routed rig's underlay is IPv4 only
        Capacity = new NodeCapacity { CpuCores = cpuCores, PiecesPerCore = 100, MemoryBytes = memoryBytes },
        Networks = [_rig.ContainerNetwork],
    };

    /// <summary>Runs the docker CLI against this host (fixture set-up; the platform itself speaks the Engine API).</summary>
    public Task<string> DockerAsync(IEnumerable<string> args, byte[]? stdin = null) =>
        Shell.RunAsync(Tools.Find("docker", "docker.io"), ["-H", Endpoint, .. args], stdin);

    private async Task<bool> PingAsync()
    {
        if (!File.Exists(SocketPath)) return false;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath));
            await socket.SendAsync("GET /_ping HTTP/1.0\r\n\r\n"u8.ToArray());
            var buffer = new byte[256];
            var n = await socket.ReceiveAsync(buffer);
            return n > 0 && System.Text.Encoding.ASCII.GetString(buffer, 0, n).Contains(" 200 ", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Removes everything this host started: its containers (killed, not waited for: a busybox PID 1
    /// ignores SIGTERM), dockerd, any shim left behind, its mounts, its namespace and its files.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            var ids = (await DockerAsync(["ps", "-aq"])).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0) await DockerAsync(["rm", "-f", .. ids]);
        }
        catch (Exception ex) when (ex is CommandFailedException or TimeoutException)
        {
            // dockerd is already gone: the sweep below finds what it left.
        }
        if (_dockerd is not null) await _dockerd.DisposeAsync();
        if (_bird is not null) await _bird.DisposeAsync();
        var execRoot = $"/tmp/{Name}";
        await DockerRig.SweepAsync(text =>
            text.Contains(execRoot, StringComparison.Ordinal) || text.Contains(Dir, StringComparison.Ordinal));
        try
        {
            await DockerRig.Ip("netns", "del", Name);
        }
        catch (CommandFailedException)
        {
        }
        try
        {
            Directory.Delete(execRoot, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
