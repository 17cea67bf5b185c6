using EdgeEru.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Deploy;

/// <summary>A deploy request: what to run, how many, where, with what resources.</summary>
public sealed record DeploySpec
{
    public required string App { get; init; }
    public required string Entrypoint { get; init; }
    public required string Image { get; init; }
    public IReadOnlyList<string> Command { get; init; } = [];
    public IReadOnlyList<string> Env { get; init; } = [];
    public string? WorkingDir { get; init; }
    public string? User { get; init; }

    /// <summary>Docker restart policy: no, always, on-failure, unless-stopped ("" = no).</summary>
    public string Restart { get; init; } = "";

    /// <summary>Commands run inside each new container after it starts; one failing fails that instance.</summary>
    public IReadOnlyList<string> AfterStart { get; init; } = [];

    /// <summary>Commands run inside a container before it is stopped (recorded with the workload).</summary>
    public IReadOnlyList<string> BeforeStop { get; init; } = [];

    /// <summary>Registry credentials ("user:password" or a token) for pulling a missing image.</summary>
    public string? ImageAuth { get; init; }
    public IReadOnlyList<PublishedPort> Ports { get; init; } = [];
    public HealthCheckSpec? Healthcheck { get; init; }
    public int Count { get; init; } = 1;
    public required string Pod { get; init; }

    /// <summary>Only these nodes (empty: every schedulable, alive node of the pod).</summary>
    public IReadOnlyList<string> Nodes { get; init; } = [];

    /// <summary>Only nodes carrying all of these labels.</summary>
    public IReadOnlyDictionary<string, string> NodeLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>No node carrying any of these labels.</summary>
    public IReadOnlyDictionary<string, string> ExcludeNodeLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>Named nodes are used even without a heartbeat.</summary>
    public bool Force { get; init; }

    /// <summary>
    /// Docker network → fixed addresses: "IPV4", "IPV4,IPV6" or ",IPV6" ("" lets the driver choose both). A fixed
    /// address fits one instance. One string per network, so the API's network map carries IPv6 unchanged.
    /// </summary>
    public IReadOnlyDictionary<string, string> Networks { get; init; } = new Dictionary<string, string>();

    /// <summary>Docker network → the fixed IPv4 address asked for, "" for none.</summary>
    public IReadOnlyDictionary<string, string> Networks4() => Networks.ToDictionary(n => n.Key, n => SplitAddresses(n.Value).V4);

    /// <summary>Docker network → the fixed IPv6 address asked for, only for networks with one.</summary>
    public IReadOnlyDictionary<string, string> Networks6() => Networks.Select(n => (n.Key, SplitAddresses(n.Value).V6))
        .Where(n => n.V6.Length > 0).ToDictionary(n => n.Key, n => n.V6);

    /// <summary>"IPV4,IPV6" → its two parts (either may be "").</summary>
    public static (string V4, string V6) SplitAddresses(string value)
    {
        var comma = value.IndexOf(',', StringComparison.Ordinal);
        return comma < 0 ? (value, "") : (value[..comma], value[(comma + 1)..]);
    }

    public IReadOnlyList<string> Tags { get; init; } = [];
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
    public long MemoryRequest { get; init; }
    public long MemoryLimit { get; init; }
    public double Cpu { get; init; }
    public bool CpuBind { get; init; }
    public Strategy Strategy { get; init; } = Strategy.Auto;
    public int PerNodeLimit { get; init; }

    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (!Names.IsLabel(App)) p.Add($"app \"{App}\" must be a DNS label");
        if (!Names.IsLabel(Entrypoint)) p.Add($"entrypoint \"{Entrypoint}\" must be a DNS label (and so has no '_')");
        if (string.IsNullOrWhiteSpace(Image)) p.Add("image is empty");
        if (!Names.IsLabel(Pod)) p.Add($"pod \"{Pod}\" must be a DNS label");
        if (Count is < 1 or > 10_000) p.Add($"count {Count} is outside 1-10000");
        if (MemoryLimit > 0 && MemoryRequest > MemoryLimit) p.Add($"memory request {MemoryRequest} is above the limit {MemoryLimit}");
        foreach (var (net, value) in Networks)
        {
            var (ip, ip6) = SplitAddresses(value);
            if (ip.Length > 0 && !System.Net.IPAddress.TryParse(ip, out _)) p.Add($"network {net}: \"{ip}\" is not an IPv4 address");
            if (ip6.Contains(',', StringComparison.Ordinal) || ip6.Length > 0 && !IpAddresses.IsIPv6(ip6))
                p.Add($"network {net}: \"{ip6}\" is not an IPv6 address (NETWORK=IPV4,IPV6)");
            if (value.Trim(',').Length > 0 && Count > 1) p.Add($"network {net}: a fixed address fits one instance, count is {Count}");
        }
        foreach (var t in Tags) if (!Names.IsLabel(t)) p.Add($"tag \"{t}\" must be a DNS label");
        if (Restart is not ("" or "no" or "always" or "on-failure" or "unless-stopped"))
            p.Add($"restart \"{Restart}\" must be no, always, on-failure or unless-stopped");
        foreach (var port in Ports)
        {
            if (!Names.IsLabel(port.Name)) p.Add($"ports: name \"{port.Name}\" must be a DNS label");
            if (port.Port is < 1 or > 65535) p.Add($"ports: {port.Name} number {port.Port} is outside 1-65535");
            if (port.Protocol is not ("tcp" or "udp")) p.Add($"ports: {port.Name} protocol \"{port.Protocol}\" must be tcp or udp");
        }
        if (Ports.Select(x => x.Name).Distinct(StringComparer.Ordinal).Count() != Ports.Count) p.Add("ports: names must be distinct");
        if (Healthcheck is { } h)
        {
            foreach (var name in h.TcpPorts.Concat(h.Http is null ? [] : [h.Http.Port]))
                if (Ports.All(x => x.Name != name)) p.Add($"healthcheck: port \"{name}\" is not a published port");
            if (h.Http is { } http && !http.Path.StartsWith('/')) p.Add($"healthcheck: http path \"{http.Path}\" must start with /");
            if (h.Http is { ExpectedCode: not 0 and (< 100 or > 599) })
                p.Add($"healthcheck: expected code {h.Http.ExpectedCode} is not an HTTP status");
            if (h.IntervalMs < 100) p.Add($"healthcheck: interval {h.IntervalMs} ms is below 100");
            if (h.TimeoutMs < 10) p.Add($"healthcheck: timeout {h.TimeoutMs} ms is below 10");
            if (h.HealthyAfter < 1 || h.UnhealthyAfter < 1) p.Add("healthcheck: healthy_after and unhealthy_after must be at least 1");
            if (h.StartGraceMs < 0) p.Add("healthcheck: start grace must not be negative");
        }
        foreach (var hook in AfterStart.Concat(BeforeStop))
        {
            try
            {
                if (CommandLine.Split(hook).Count == 0) p.Add("hooks: a command is empty");
            }
            catch (FormatException ex)
            {
                p.Add("hooks: " + ex.Message);
            }
        }
        if (Nodes.Any(n => !Names.IsLabel(n))) p.Add($"nodes: \"{Nodes.First(n => !Names.IsLabel(n))}\" is not a node name");
        if (PerNodeLimit < 0) p.Add($"per-node limit {PerNodeLimit} must not be negative");
        p.AddRange(Resources.Problems());
        p.AddRange(RuntimeProblems());
        return p;
    }

    public ResourceRequest Resources => new() { Memory = MemoryRequest, Cpu = Cpu, CpuBind = CpuBind };

    /// <summary>
    /// Named volumes ("data:/var/lib/app": one Docker volume per instance, handed on by a replace on the same
    /// node) and bind mounts of host paths ("/srv/shared:/shared:ro", only under Core's allowed roots).
    /// </summary>
    public IReadOnlyList<VolumeSpec> Volumes { get; init; } = [];

    /// <summary>Files written into each container before it starts.</summary>
    public IReadOnlyList<DataFile> Files { get; init; } = [];

    /// <summary>Secrets of the registry written into each container as files before it starts.</summary>
    public IReadOnlyList<SecretMount> Secrets { get; init; } = [];

    /// <summary>Privileges, sysctls, DNS servers, extra hosts, ulimits, log driver: as Docker takes them.</summary>
    public RuntimeOptions Runtime { get; init; } = new();

    /// <summary>Commands run inside each new container once, after it first starts (after_start runs on every start).</summary>
    public IReadOnlyList<string> AfterCreate { get; init; } = [];

    /// <summary>Skip the after_create and after_start hooks of this deploy.</summary>
    public bool IgnoreHooks { get; init; }

    /// <summary>Never pull: the image must be on the node already (default: pull when missing, or for a :latest tag).</summary>
    public bool IgnorePull { get; init; }

    /// <summary>Replace only: the workload this instance succeeds (stopped first), whose resources it may use.</summary>
    internal string? Succeeds { get; init; }

    /// <summary>Replace only: named volume → the Docker volume to mount instead of a new one (the predecessor's data).</summary>
    internal IReadOnlyDictionary<string, string> InheritedVolumes { get; init; } = new Dictionary<string, string>();

    private IEnumerable<string> RuntimeProblems()
    {
        var targets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in Volumes)
        {
            foreach (var problem in v.Problems()) yield return $"volumes: \"{v}\": {problem}";
            if (!targets.Add(v.Target)) yield return $"volumes: {v.Target} is mounted twice";
        }
        if (Volumes.Where(v => v.IsNamed).GroupBy(v => v.Source).FirstOrDefault(g => g.Count() > 1) is { } twice)
            yield return $"volumes: the named volume {twice.Key} is listed twice";
        var files = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in Files)
        {
            if (SpecPaths.Problem(f.Path) is { } problem) yield return $"data: \"{f.Path}\": {problem}";
            if (!files.Add(f.Path)) yield return $"data: {f.Path} is given twice";
            if (f.Mode is < 0 or > 0xFFF) yield return $"data: {f.Path}: mode {Convert.ToString(f.Mode, 8)} is not a file mode (0-7777)";
            if (f.Uid < 0 || f.Gid < 0) yield return $"data: {f.Path}: owner must be numeric uid:gid, not negative";
        }
        if (Files.Sum(f => (long)f.Content.Length) > DataFile.MaxTotalBytes)
            yield return $"data: {Files.Sum(f => (long)f.Content.Length)} bytes in all; " +
                $"at most {DataFile.MaxTotalBytes} (put bigger things in an image or a volume)";
        foreach (var secret in Secrets)
        {
            if (!Names.IsId(secret.Name)) yield return $"secrets: name \"{secret.Name}\" must be 1-253 of [A-Za-z0-9._-]";
            if (SpecPaths.Problem(secret.Target) is { } problem)
                yield return $"secrets: {secret.Name}: target \"{secret.Target}\": {problem}";
            if (!files.Add(secret.Target)) yield return $"secrets: {secret.Target} is also written by another data file or secret";
            if (secret.Mode is < 0 or > 0xFFF)
                yield return $"secrets: {secret.Name}: mode {Convert.ToString(secret.Mode, 8)} is not a file mode";
            if (secret.Uid < 0 || secret.Gid < 0) yield return $"secrets: {secret.Name}: owner must be numeric uid:gid, not negative";
        }
        foreach (var cap in Runtime.CapAdd)
            if (!System.Text.RegularExpressions.Regex.IsMatch(cap, "^(CAP_)?[A-Z][A-Z_]{1,30}$"))
                yield return $"cap_add: \"{cap}\" is not a capability name (e.g. NET_ADMIN)";
        foreach (var (key, value) in Runtime.Sysctls)
        {
            if (!System.Text.RegularExpressions.Regex.IsMatch(key, @"^[a-z0-9_]+(\.[a-zA-Z0-9_/-]+)+$"))
                yield return $"sysctls: \"{key}\" is not a sysctl name (e.g. net.core.somaxconn)";
            if (value.Length is 0 or > 256 || value.Any(char.IsControl))
                yield return $"sysctls: {key}: the value must be 1-256 printable characters";
        }
        foreach (var server in Runtime.Dns)
            if (!SpecPaths.IsAddress(server)) yield return $"dns: \"{server}\" is not an IP address";
        foreach (var entry in Runtime.ExtraHosts)
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !Names.IsDomain(entry[..colon].ToLowerInvariant()) || !SpecPaths.IsAddress(entry[(colon + 1)..]))
                yield return $"extra_hosts: \"{entry}\" must be NAME:ADDRESS (e.g. db.local:198.18.0.5)";
        }
        foreach (var u in Runtime.Ulimits)
        {
            if (!UlimitSpec.Known.Contains(u.Name))
                yield return $"ulimits: \"{u.Name}\" is not a limit ({string.Join(", ", UlimitSpec.Known)})";
            if (u.Soft < -1 || u.Hard < -1 || (u.Hard >= 0 && (u.Soft > u.Hard || u.Soft == -1)))
                yield return $"ulimits: {u.Name}: soft {u.Soft} must be at most hard {u.Hard} (-1: unlimited)";
        }
        if (Runtime.Ulimits.GroupBy(u => u.Name).FirstOrDefault(g => g.Count() > 1) is { } dup)
            yield return $"ulimits: {dup.Key} is given twice";
        if (Runtime.LogDriver.Length > 0 && !System.Text.RegularExpressions.Regex.IsMatch(Runtime.LogDriver, "^[a-z0-9][a-z0-9_.-]{0,62}$"))
            yield return $"log: driver \"{Runtime.LogDriver}\" is not a driver name (json-file, local, journald, syslog, ...)";
        if (Runtime.LogDriver.Length == 0 && Runtime.LogOptions.Count > 0) yield return "log: options need a driver";
        foreach (var hook in AfterCreate)
        {
            string? problem = null;
            try
            {
                if (CommandLine.Split(hook).Count == 0) problem = "hooks: an after_create command is empty";
            }
            catch (FormatException ex)
            {
                problem = "hooks: " + ex.Message;
            }
            if (problem is not null) yield return problem;
        }
    }
}

/// <summary>A volume of a spec: a named volume ("data") or a host path ("/srv/x") mounted at <see cref="Target"/>.</summary>
public sealed record VolumeSpec(string Source, string Target, bool ReadOnly)
{
    /// <summary>A named volume (one per instance), not a bind mount of a host path.</summary>
    public bool IsNamed => !Source.StartsWith('/');

    /// <summary>"data:/var/lib/app", "/host/path:/in:ro", "name:/target:rw".</summary>
    public static VolumeSpec Parse(string text, string where)
    {
        var parts = text.Split(':');
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new FormatException($"{where}: \"{text}\" must be NAME:/target or /host/path:/target, with :ro or :rw after it");
        if (parts.Length == 3 && parts[2] is not ("ro" or "rw"))
            throw new FormatException($"{where}: \"{text}\": the mode \"{parts[2]}\" must be ro or rw");
        return new VolumeSpec(parts[0], parts[1], parts.Length == 3 && parts[2] == "ro");
    }

    internal IEnumerable<string> Problems()
    {
        if (SpecPaths.Problem(Target) is { } target) yield return "target " + target;
        else if (Target == "/") yield return "target / would hide the image";
        if (IsNamed && !Names.IsLabel(Source)) yield return $"the volume name \"{Source}\" must be a DNS label (a-z, 0-9, '-')";
        if (!IsNamed && SpecPaths.Problem(Source) is { } source) yield return "host path " + source;
    }

    public override string ToString() => $"{Source}:{Target}{(ReadOnly ? ":ro" : "")}";
}

/// <summary>A file of the spec written into each container before it starts.</summary>
public sealed record DataFile(string Path, byte[] Content, int Mode = 0x1A4, int Uid = 0, int Gid = 0)
{
    /// <summary>Data files travel in the deploy request: config, not data sets.</summary>
    public const int MaxTotalBytes = 1 << 20;
}

/// <summary>A secret written into each container as a file (mode 0400 by default).</summary>
public sealed record SecretMount(string Name, string Target, int Mode = 0x100, int Uid = 0, int Gid = 0);

/// <summary>Paths inside containers (and host paths of bind mounts): absolute, normalized, printable. And addresses.</summary>
internal static class SpecPaths
{
    /// <summary>An IPv4 address in four parts (IPAddress.Parse takes "1.2.3" too) or an IPv6 address.</summary>
    public static bool IsAddress(string s) =>
        System.Net.IPAddress.TryParse(s, out var ip)
            && (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 || s.Split('.').Length == 4);

    public static string? Problem(string path) =>
        !path.StartsWith('/') ? "must be an absolute path"
        : path.Length > 4096 || path.Any(char.IsControl) ? "must be printable and at most 4096 characters"
        : path.Split('/').Any(seg => seg is "." or "..") || path.Contains("//", StringComparison.Ordinal)
            || (path.Length > 1 && path.EndsWith('/'))
            ? "must be normalized (no '.', '..', '//' or trailing '/')"
        : null;
}

/// <summary>What happened to one instance.</summary>
public sealed record InstanceOutcome(string Node, string? WorkloadId, string? Name, string? Error)
{
    /// <summary>Docker network → address, as Docker gave it.</summary>
    public IReadOnlyDictionary<string, string> Addresses { get; init; } = new Dictionary<string, string>();

    /// <summary>Realloc: the workload's resources now (the new ones, or the unchanged ones when refused).</summary>
    public ResourceAllocation? Resources { get; init; }
}

/// <summary>What a deploy reports while it runs: the plan first, then each instance.</summary>
public sealed record DeployProgress(IReadOnlyDictionary<string, int>? Planned, InstanceOutcome? Instance, string? Note = null);

/// <summary>How many instances fit on one node (a dry run), and why none when none.</summary>
public sealed record NodeFit(string Node, int Capacity, int Existing, string? Reason);

/// <summary>Why a request was refused before anything was created (the API maps it to a status code).</summary>
public enum RefusalKind
{
    None,
    Invalid,
    NotFound,
    NoCapacity,
    Precondition,
}

public sealed record Refusal(RefusalKind Kind, string Message);

public sealed record DeployResult(IReadOnlyList<InstanceOutcome> Instances, string? Error)
{
    public RefusalKind Refused { get; init; }

    public static DeployResult Of(Refusal r) => new([], r.Message) { Refused = r.Kind };

    public bool Ok => Error is null && Instances.All(i => i.Error is null);
}
