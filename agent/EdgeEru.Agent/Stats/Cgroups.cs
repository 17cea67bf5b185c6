using System.Globalization;
using EdgeEru.Docker;

namespace EdgeEru.Agent.Stats;

/// <summary>
/// A container's counters from the kernel: its cgroup (v2, or the v1 memory, cpuacct and blkio
/// controllers), found through <c>/proc/{pid}/cgroup</c> and the host's cgroup mounts, and its network
/// devices from <c>/proc/{pid}/net/dev</c>. The parsers are pure; <see cref="Read"/> does the I/O.
/// </summary>
public sealed class Cgroups
{
    private readonly string? _v2;
    private readonly IReadOnlyDictionary<string, (string Mount, string Root)> _v1;

    public Cgroups(string mountInfo) => (_v2, _v1) = ParseMountInfo(mountInfo);

    public static Cgroups ForHost() => new(File.ReadAllText("/proc/self/mountinfo"));

    public bool Available => _v2 is not null || _v1.ContainsKey("memory");

    /// <summary>The sample of the container whose init process is <paramref name="pid"/>, or null where cgroups cannot be read.</summary>
    public ContainerStatsSample? Read(int pid, string procRoot = "/proc")
    {
        if (pid <= 0) return null;
        try
        {
            var (v2Path, v1Paths) = ParseProcCgroup(File.ReadAllText($"{procRoot}/{pid}/cgroup"));
            var (rx, tx) = ParseNetDev(File.ReadAllText($"{procRoot}/{pid}/net/dev"));
            if (v1Paths.TryGetValue("memory", out var memPath) && Dir("memory", memPath) is { } mem)
            {
                var usage = long.Parse(File.ReadAllText(Path.Combine(mem, "memory.usage_in_bytes")).Trim(), CultureInfo.InvariantCulture);
                var cpu = v1Paths.TryGetValue("cpuacct", out var cp) && Dir("cpuacct", cp) is { } cpuDir
                    ? long.Parse(File.ReadAllText(Path.Combine(cpuDir, "cpuacct.usage")).Trim(), CultureInfo.InvariantCulture) / 1e9 : 0;
                var (rd, wr) = v1Paths.TryGetValue("blkio", out var bp) && Dir("blkio", bp) is { } blk
                    ? ParseBlkioV1(ReadFirst(blk, "blkio.throttle.io_service_bytes", "blkio.io_service_bytes_recursive"))
                    : (0, 0);
                return new ContainerStatsSample(usage, cpu, rx, tx, rd, wr);
            }
            if (_v2 is not null && v2Path is not null)
            {
                var dir = _v2 + v2Path;
                var usage = long.Parse(File.ReadAllText(Path.Combine(dir, "memory.current")).Trim(), CultureInfo.InvariantCulture);
                var cpu = ParseKeyValues(File.ReadAllText(Path.Combine(dir, "cpu.stat"))).GetValueOrDefault("usage_usec") / 1e6;
                var (rd, wr) = File.Exists(Path.Combine(dir, "io.stat"))
                    ? ParseIoStat(File.ReadAllText(Path.Combine(dir, "io.stat")))
                    : (0, 0);
                return new ContainerStatsSample(usage, cpu, rx, tx, rd, wr);
            }
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null; // gone meanwhile, or not readable from here: the caller asks Docker
        }
    }

    private static string ReadFirst(string dir, params string[] names)
    {
        foreach (var n in names)
        {
            var p = Path.Combine(dir, n);
            if (File.Exists(p)) return File.ReadAllText(p);
        }
        return "";
    }

    private string? Dir(string controller, string path)
    {
        if (!_v1.TryGetValue(controller, out var m)) return null;
        var dir = Resolve(m.Mount, m.Root, path);
        return dir is not null && Directory.Exists(dir) ? dir : null;
    }

    /// <summary>A cgroup path as /proc/pid/cgroup names it → the directory under a mount whose root is <paramref name="root"/>.</summary>
    public static string? Resolve(string mount, string root, string path) =>
        root == "/" ? mount + path
        : path == root || path.StartsWith(root + "/", StringComparison.Ordinal) ? mount + path[root.Length..]
        : null;

    /// <summary>/proc/self/mountinfo → the cgroup2 mount point and each v1 controller's (mount point, root).</summary>
    public static (string? V2, IReadOnlyDictionary<string, (string Mount, string Root)> V1) ParseMountInfo(string text)
    {
        string? v2 = null;
        var v1 = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            var parts = line.Split(' ');
            var dash = Array.IndexOf(parts, "-");
            if (dash < 5 || dash + 3 > parts.Length) continue;
            var (root, mount, fsType, superOptions) = (parts[3], parts[4], parts[dash + 1], parts[dash + 3]);
            if (fsType == "cgroup2") v2 ??= mount;
            else if (fsType == "cgroup")
                foreach (var opt in superOptions.Split(','))
                    if (opt is "memory" or "cpuacct" or "blkio" or "cpu") v1.TryAdd(opt, (mount, root));
        }
        return (v2, v1);
    }

    /// <summary>/proc/pid/cgroup → the v2 path (the "0::" line) and each v1 controller's path.</summary>
    public static (string? V2, IReadOnlyDictionary<string, string> V1) ParseProcCgroup(string text)
    {
        string? v2 = null;
        var v1 = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            if (parts[0] == "0" && parts[1].Length == 0) v2 = parts[2];
            else
                foreach (var c in parts[1].Split(','))
                    if (c.Length > 0) v1[c] = parts[2];
        }
        return (v2, v1);
    }

    /// <summary>"key value" lines (memory.stat, cpu.stat).</summary>
    public static Dictionary<string, long> ParseKeyValues(string text)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
                d[parts[0]] = v;
        }
        return d;
    }

    /// <summary>cgroup v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=..." per device, summed.</summary>
    public static (long Read, long Write) ParseIoStat(string text)
    {
        long r = 0, w = 0;
        foreach (var field in text.Split(['\n', ' '], StringSplitOptions.RemoveEmptyEntries))
        {
            if (field.StartsWith("rbytes=", StringComparison.Ordinal)) r += long.Parse(field.AsSpan(7), CultureInfo.InvariantCulture);
            else if (field.StartsWith("wbytes=", StringComparison.Ordinal)) w += long.Parse(field.AsSpan(7), CultureInfo.InvariantCulture);
        }
        return (r, w);
    }

    /// <summary>cgroup v1 blkio io_service_bytes: "8:0 Read 123" per device (the "Total" lines skipped), summed.</summary>
    public static (long Read, long Write) ParseBlkioV1(string text)
    {
        long r = 0, w = 0;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 3 || !long.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) continue;
            if (parts[1] == "Read") r += v;
            else if (parts[1] == "Write") w += v;
        }
        return (r, w);
    }

    /// <summary>/proc/pid/net/dev → received and transmitted bytes over every device but loopback.</summary>
    public static (long Rx, long Tx) ParseNetDev(string text)
    {
        long rx = 0, tx = 0;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || line[..colon].Trim() == "lo") continue;
            var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 9) continue;
            rx += long.Parse(f[0], CultureInfo.InvariantCulture);
            tx += long.Parse(f[8], CultureInfo.InvariantCulture);
        }
        return (rx, tx);
    }
}
