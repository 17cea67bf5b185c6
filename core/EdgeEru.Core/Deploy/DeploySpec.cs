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
    public IReadOnlyList<PublishedPort> Ports { get; init; } = [];
    public HealthCheckSpec? Healthcheck { get; init; }
    public int Count { get; init; } = 1;
    public required string Pod { get; init; }

    /// <summary>Only these nodes (empty: every schedulable, alive node of the pod).</summary>
    public IReadOnlyList<string> Nodes { get; init; } = [];

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
        p.AddRange(Resources.Problems());
        return p;
    }

    public ResourceRequest Resources => new() { Memory = MemoryRequest, Cpu = Cpu, CpuBind = CpuBind };
}

/// <summary>What happened to one instance.</summary>
public sealed record InstanceOutcome(string Node, string? WorkloadId, string? Name, string? Error);

public sealed record DeployResult(IReadOnlyList<InstanceOutcome> Instances, string? Error)
{
    public bool Ok => Error is null && Instances.All(i => i.Error is null);
}
