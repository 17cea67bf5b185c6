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

    /// <summary>Docker network → fixed IPv4 ("" lets the driver choose). A fixed address fits one instance.</summary>
    public IReadOnlyDictionary<string, string> Networks { get; init; } = new Dictionary<string, string>();

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
        foreach (var (net, ip) in Networks)
        {
            if (ip.Length > 0 && !System.Net.IPAddress.TryParse(ip, out _)) p.Add($"network {net}: \"{ip}\" is not an IPv4 address");
            if (ip.Length > 0 && Count > 1) p.Add($"network {net}: a fixed address fits one instance, count is {Count}");
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
            if (h.Http is { ExpectedCode: not 0 and (< 100 or > 599) }) p.Add($"healthcheck: expected code {h.Http.ExpectedCode} is not an HTTP status");
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
        return p;
    }

    public ResourceRequest Resources => new() { Memory = MemoryRequest, Cpu = Cpu, CpuBind = CpuBind };
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
