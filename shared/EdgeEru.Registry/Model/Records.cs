using System.Text.Json.Serialization;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>Every registry value: a schema version and a self-check run on write and on read.</summary>
public interface IRegistryRecord
{
    /// <summary>Schema major version. Additive changes keep it; readers ignore fields they do not know.</summary>
    int V { get; }

    /// <summary>The name this value is stored under (the last part of its key).</summary>
    string KeyName { get; }

    /// <summary>What is wrong with this value, or an empty list.</summary>
    IReadOnlyList<string> Validate();
}

/// <summary>A group of nodes; deploys target one pod.</summary>
public sealed record Pod : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }
    public string Description { get; set; } = "";
    public StringMap Labels { get; set; } = StringMap.Empty;

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Name), $"pod name \"{Name}\" must be a DNS label (a-z, 0-9, '-', at most 63)");
        return e;
    }
}

/// <summary>How Core reaches a node's Docker engine. TLS material is referenced by path, never stored.</summary>
public sealed record DockerEndpoint
{
    /// <summary><c>unix:///var/run/docker.sock</c> or <c>tcp://host:2376</c>.</summary>
    public required string Address { get; init; }
    public string? TlsCaPath { get; init; }
    public string? TlsCertPath { get; init; }
    public string? TlsKeyPath { get; init; }

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Validate(e);
        return e;
    }

    internal void Validate(List<string> e)
    {
        var ok = Uri.TryCreate(Address, UriKind.Absolute, out var uri) && uri.Scheme is "unix" or "tcp";
        Names.Require(e, ok, $"docker endpoint \"{Address}\" must be unix:///path or tcp://host:port");
        if (ok && uri!.Scheme == "tcp")
            Names.Require(e, (TlsCertPath is null) == (TlsKeyPath is null), $"docker endpoint TLS needs both a certificate and a key");
    }
}

public sealed record NumaNode
{
    [JsonConverter(typeof(PooledStringConverter))] public required string Id { get; init; }
    public int[] Cpus { get; set; } = [];
    public long MemoryBytes { get; init; }
}

public sealed record NodeCapacity
{
    public int CpuCores { get; init; }

    /// <summary>Share pieces per core: 100 = no oversell; 200 = each core can be bound twice.</summary>
    public int PiecesPerCore { get; set; } = 100;
    public long MemoryBytes { get; init; }
    public NumaNode[] Numa { get; set; } = [];

    internal void Validate(List<string> e)
    {
        Names.Require(e, CpuCores >= 0, $"capacity.cpu_cores must not be negative");
        Names.Require(e, PiecesPerCore >= 100, $"capacity.pieces_per_core must be at least 100 (100 = no oversell)");
        Names.Require(e, MemoryBytes >= 0, $"capacity.memory_bytes must not be negative");
        var seen = new HashSet<int>();
        foreach (var n in Numa)
            foreach (var cpu in n.Cpus)
            {
                Names.Require(e, cpu >= 0 && cpu < CpuCores, $"numa node {n.Id}: cpu {cpu} is outside 0..{CpuCores - 1}");
                Names.Require(e, seen.Add(cpu), $"numa node {n.Id}: cpu {cpu} belongs to two NUMA nodes");
            }
    }
}

/// <summary>A Docker host. Its resource usage is derived from its workload records, never stored.</summary>
public sealed record Node : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Pod { get; init; }
    public required DockerEndpoint Endpoint { get; init; }
    /// <summary>The host's own address (served as <c>{node}.node.{zone}</c>).</summary>
    public string? Address { get; init; }
    /// <summary>The host's own IPv6 address beside <see cref="Address"/> (AAAA of <c>{node}.node.{zone}</c>); absent when none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Address6 { get; init; }
    public StringMap Labels { get; set; } = StringMap.Empty;
    public NodeCapacity Capacity { get; set; } = new();
    /// <summary>Docker networks workloads on this node can attach to.</summary>
    [JsonConverter(typeof(PooledStringArrayConverter))] public string[] Networks { get; set; } = [];
    /// <summary>Bypassed: keeps its workloads, receives no new ones.</summary>
    public bool Unschedulable { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Name), $"node name \"{Name}\" must be a DNS label");
        Names.Require(e, Names.IsLabel(Pod), $"node {Name}: pod \"{Pod}\" must be a DNS label");
        Endpoint.Validate(e);
        Capacity.Validate(e);
        Names.Require(e, Address6 is null || IpAddresses.IsIPv6(Address6), $"node {Name}: address6 \"{Address6}\" is not an IPv6 address");
        return e;
    }
}

/// <summary>
/// A node's allocation fence. Every transaction that adds or removes workloads on the node also bumps
/// this key, so a writer that read the fence and planned on that node's workloads can guard its commit
/// on the fence alone: one key per node, instead of a guard on (and a read of) the whole workloads range.
/// </summary>
public sealed record NodeAllocation : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Node { get; init; }
    /// <summary>Bumped by each change; the key's mod revision is what writers guard on.</summary>
    public long Generation { get; init; }
    public DateTimeOffset ChangedAt { get; init; }

    [JsonIgnore] public string KeyName => Node;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Node), $"allocations: node \"{Node}\" must be a DNS label");
        Names.Require(e, Generation >= 0, $"allocations/{Node}: generation {Generation} must not be negative");
        return e;
    }
}

/// <summary>The agent's heartbeat, under its lease: the node is alive while this key exists.</summary>
public sealed record NodeStatus : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Node { get; init; }
    public DateTimeOffset HeartbeatAt { get; init; }
    public string? AgentVersion { get; init; }
    public string? DockerVersion { get; init; }

    /// <summary>The agent's HTTP base URL (log stream, /metrics), reachable from where <c>eru</c> runs.</summary>
    public string? AgentUrl { get; init; }

    [JsonIgnore] public string KeyName => Node;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Node), $"node-status: node \"{Node}\" must be a DNS label");
        Names.Require(e, AgentUrl is null || Uri.TryCreate(AgentUrl, UriKind.Absolute, out var u) && u.Scheme is "http" or "https",
            $"node-status {Node}: agent_url \"{AgentUrl}\" must be an http:// or https:// URL");
        return e;
    }
}

public sealed record PublishedPort
{
    [JsonConverter(typeof(PooledStringConverter))] public required string Name { get; init; }
    public int Port { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public string Protocol { get; set; } = "tcp";
}

/// <summary>One core bound to a workload: <c>pieces</c> of the node's pieces-per-core (100 = a full core).</summary>
public sealed record CpuBinding
{
    public int Core { get; init; }
    public int Pieces { get; init; }
}

/// <summary>What Core reserved for a workload; node usage is the sum of these over the node's workloads.</summary>
public sealed record ResourceAllocation
{
    public long MemoryRequestBytes { get; init; }
    public long MemoryLimitBytes { get; init; }
    /// <summary>CPU request in cores (the CFS quota when not bound).</summary>
    public double CpuRequest { get; init; }
    public double CpuLimit { get; init; }
    /// <summary>Bound cores; empty when the workload runs in the shared pool.</summary>
    public CpuBinding[] CpuBind { get; set; } = [];
    [JsonConverter(typeof(PooledStringConverter))] public string? NumaNode { get; init; }

    public bool Equals(ResourceAllocation? other) =>
        other is not null && MemoryRequestBytes == other.MemoryRequestBytes && MemoryLimitBytes == other.MemoryLimitBytes
        && CpuRequest.Equals(other.CpuRequest) && CpuLimit.Equals(other.CpuLimit) && NumaNode == other.NumaNode
        && CpuBind.AsSpan().SequenceEqual(other.CpuBind);

    public override int GetHashCode() =>
        HashCode.Combine(MemoryRequestBytes, MemoryLimitBytes, CpuRequest, CpuLimit, NumaNode, CpuBind.Length);
}

public sealed record HttpCheck
{
    /// <summary>Name of a published port.</summary>
    [JsonConverter(typeof(PooledStringConverter))] public required string Port { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public string Path { get; set; } = "/";
    /// <summary>0: any 2xx or 3xx.</summary>
    public int ExpectedCode { get; init; }
}

public sealed record HealthCheckSpec
{
    /// <summary>Names of published ports that must accept a TCP connection.</summary>
    [JsonConverter(typeof(PooledStringArrayConverter))] public string[] TcpPorts { get; set; } = [];
    public HttpCheck? Http { get; init; }
    public int IntervalMs { get; set; } = 5000;
    public int TimeoutMs { get; set; } = 2000;
    public int HealthyAfter { get; set; } = 1;
    public int UnhealthyAfter { get; set; } = 3;
    public int StartGraceMs { get; init; }

    public bool Equals(HealthCheckSpec? other) =>
        other is not null && Http == other.Http && IntervalMs == other.IntervalMs && TimeoutMs == other.TimeoutMs
        && HealthyAfter == other.HealthyAfter && UnhealthyAfter == other.UnhealthyAfter && StartGraceMs == other.StartGraceMs
        && TcpPorts.AsSpan().SequenceEqual(other.TcpPorts);

    public override int GetHashCode() =>
        HashCode.Combine(Http, IntervalMs, TimeoutMs, HealthyAfter, UnhealthyAfter, StartGraceMs, TcpPorts.Length);
}

/// <summary>A container Core created, as Core recorded it.</summary>
public sealed record Workload : IRegistryRecord
{
    public int V { get; set; } = 1;
    /// <summary>The Docker container id.</summary>
    public required string Id { get; init; }
    public required string Name { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string App { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Entrypoint { get; init; }
    public required string Ident { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Pod { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Node { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Image { get; init; }
    [JsonConverter(typeof(PooledStringArrayConverter))] public string[] Tags { get; set; } = [];
    public StringMap Labels { get; set; } = StringMap.Empty;
    /// <summary>Docker network name → IPv4 address requested ("" when the driver assigns it).</summary>
    [JsonConverter(typeof(AddressMapConverter))] public StringMap Networks { get; set; } = StringMap.Empty;
    /// <summary>Docker network name → fixed IPv6 address requested; absent when none was asked for (the driver assigns).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonConverter(typeof(AddressMapConverter))]
    public StringMap? Networks6 { get; init; }
    [JsonConverter(typeof(InterningConverter<PublishedPort[]>))] public PublishedPort[] Ports { get; set; } = [];
    [JsonConverter(typeof(InterningConverter<ResourceAllocation>))] public ResourceAllocation Resources { get; set; } = new();
    [JsonConverter(typeof(InterningConverter<HealthCheckSpec>))] public HealthCheckSpec? Healthcheck { get; init; }
    /// <summary>Commands Core runs inside the container (docker exec) before stopping it; absent when none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string[]? BeforeStop { get; init; }

    /// <summary>Commands Core runs inside the container each time it starts it (deploy, start, restart); absent when none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string[]? AfterStart { get; init; }

    /// <summary>Named volumes and bind mounts; absent when none. A replace on the same node hands named volumes on.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public VolumeMount[]? Volumes { get; init; }

    /// <summary>Names of the secrets written into the container (never their content); absent when none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string[]? Secrets { get; init; }

    /// <summary>A one-off job (<c>eru run</c>): counted on its node, never live, so never in DNS, the LB or SSH.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool Job { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    [JsonIgnore] public string KeyName => Id;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Id), $"workload id \"{Id}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Names.IsId(Name), $"workload {Id}: name \"{Name}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Names.IsLabel(App), $"workload {Id}: app \"{App}\" must be a DNS label");
        Names.Require(e, Names.IsLabel(Entrypoint), $"workload {Id}: entrypoint \"{Entrypoint}\" must be a DNS label");
        Names.Require(e, Names.IsLabel(Ident), $"workload {Id}: ident \"{Ident}\" must be a DNS label");
        Names.Require(e, Names.IsLabel(Pod), $"workload {Id}: pod \"{Pod}\" must be a DNS label");
        Names.Require(e, Names.IsLabel(Node), $"workload {Id}: node \"{Node}\" must be a DNS label");
        Names.Require(e, !string.IsNullOrWhiteSpace(Image), $"workload {Id}: image is empty");
        foreach (var t in Tags) Names.Require(e, Names.IsLabel(t), $"workload {Id}: tag \"{t}\" must be a DNS label");
        foreach (var p in Ports)
        {
            Names.Require(e, Names.IsLabel(p.Name), $"workload {Id}: port name \"{p.Name}\" must be a DNS label");
            Names.Require(e, p.Port is > 0 and < 65536, $"workload {Id}: port {p.Name} number {p.Port} is outside 1-65535");
            Names.Require(e, p.Protocol is "tcp" or "udp", $"workload {Id}: port {p.Name} protocol \"{p.Protocol}\" must be tcp or udp");
        }
        foreach (var (net, ip) in Networks)
            Names.Require(e, ip.Length == 0 || System.Net.IPAddress.TryParse(ip, out _),
                $"workload {Id}: network {net} address \"{ip}\" is not an IP address");
        foreach (var (net, ip) in Networks6 ?? StringMap.Empty)
            Names.Require(e, IpAddresses.IsIPv6(ip), $"workload {Id}: network {net} address6 \"{ip}\" is not an IPv6 address");
        foreach (var v in Volumes ?? [])
        {
            var problem = v.Problem();
            Names.Require(e, problem is null, $"workload {Id}: volume {v}: {problem}");
        }
        foreach (var secret in Secrets ?? []) Names.Require(e, Names.IsId(secret), $"workload {Id}: secret name \"{secret}\" is invalid");
        Names.Require(e, Resources.MemoryRequestBytes >= 0 && Resources.MemoryLimitBytes >= 0,
            $"workload {Id}: memory must not be negative");
        Names.Require(e, Resources.CpuRequest >= 0 && Resources.CpuLimit >= 0, $"workload {Id}: cpu must not be negative");
        foreach (var b in Resources.CpuBind)
            Names.Require(e, b.Core >= 0 && b.Pieces > 0, $"workload {Id}: cpu binding core {b.Core} pieces {b.Pieces} is invalid");
        return e;
    }
}

/// <summary>
/// A mount of a workload: a named volume (<c>kind</c> "volume": <c>source</c> is the Docker volume Core
/// created for this instance, <c>name</c> the spec's name) or a bind mount of a host path ("bind").
/// </summary>
public sealed record VolumeMount
{
    [JsonConverter(typeof(PooledStringConverter))] public string Kind { get; init; } = "volume";

    /// <summary>The spec's volume name (named volumes only): what a replacement asks for to get the data.</summary>
    [JsonConverter(typeof(PooledStringConverter))] public string? Name { get; init; }

    /// <summary>The Docker volume name, or the host path of a bind mount.</summary>
    public required string Source { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Target { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool ReadOnly { get; init; }

    internal string? Problem() =>
        Kind is not ("volume" or "bind") ? $"kind \"{Kind}\" must be volume or bind"
        : !Target.StartsWith('/') ? "target must be an absolute path"
        : Kind == "volume" && !Names.IsLabel(Name) ? "a named volume needs a name that is a DNS label"
        : Kind == "bind" && !Source.StartsWith('/') ? "a bind mount's source must be an absolute host path"
        : Kind == "volume" && !Names.IsId(Source) ? "the Docker volume name must be 1-253 of [A-Za-z0-9._-]"
        : null;

    public override string ToString() => $"{Source}:{Target}{(ReadOnly ? ":ro" : "")}";
}

/// <summary>What the agent observes of a workload, under the agent's lease.</summary>
public sealed record WorkloadStatus : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Id { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Node { get; init; }
    public bool Running { get; init; }
    public bool Healthy { get; init; }
    /// <summary>Docker network name → address observed on the container (IPv4; Docker's IPAddress).</summary>
    [JsonConverter(typeof(AddressMapConverter))] public StringMap Addresses { get; set; } = StringMap.Empty;
    /// <summary>
    /// Docker network name → IPv6 address observed (Docker's GlobalIPv6Address); absent when the container has none.
    /// A map beside <see cref="Addresses"/> rather than lists in it: readers that predate it decode the value unchanged.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonConverter(typeof(AddressMapConverter))]
    public StringMap? Addresses6 { get; set; }
    public DateTimeOffset CheckedAt { get; init; }
    public string? Reason { get; init; }

    [JsonIgnore] public string KeyName => Id;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Id), $"workload-status id \"{Id}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Names.IsLabel(Node), $"workload-status {Id}: node \"{Node}\" must be a DNS label");
        foreach (var (net, ip) in Addresses)
            Names.Require(e, System.Net.IPAddress.TryParse(ip, out _),
                $"workload-status {Id}: network {net} address \"{ip}\" is not an IP address");
        foreach (var (net, ip) in Addresses6 ?? StringMap.Empty)
            Names.Require(e, IpAddresses.IsIPv6(ip), $"workload-status {Id}: network {net} address6 \"{ip}\" is not an IPv6 address");
        return e;
    }
}

/// <summary>
/// Static DNS records an operator adds beside the generated ones (<c>dns/records/{name}</c>): served by
/// eru-dns when the name lies inside one of its zones, taking precedence over generated names.
/// </summary>
public sealed record DnsRecordSet : IRegistryRecord
{
    public int V { get; set; } = 1;

    /// <summary>The owner name without the final dot, e.g. <c>db.eru</c>.</summary>
    public required string Name { get; init; }

    public StaticDnsRecord[] Records { get; set; } = [];

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsDomain(Name) && !Name.StartsWith("*.", StringComparison.Ordinal),
            $"dns record name \"{Name}\" must be a host name (no wildcard)");
        Names.Require(e, Records.Length > 0, $"dns records {Name}: no records");
        foreach (var r in Records)
        {
            var problem = r.Problem();
            Names.Require(e, problem is null, $"dns records {Name}: {r.Type} \"{r.Value}\": {problem}");
        }
        return e;
    }
}

public sealed record StaticDnsRecord
{
    /// <summary>A, AAAA, TXT, SRV ("priority weight port target") or MX ("preference exchange").</summary>
    [JsonConverter(typeof(PooledStringConverter))] public required string Type { get; init; }
    public required string Value { get; init; }
    public uint Ttl { get; set; } = 60;

    internal string? Problem()
    {
        if (Ttl > 86400) return "ttl is over a day";
        var parts = Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return Type switch
        {
            "A" => System.Net.IPAddress.TryParse(Value, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
                ? null : "not an IPv4 address",
            "AAAA" => System.Net.IPAddress.TryParse(Value, out var b) && b.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? null : "not an IPv6 address",
            "TXT" => Value.Length is > 0 and <= 255 && Value.All(char.IsAscii) ? null : "must be 1-255 ASCII characters",
            "SRV" => parts.Length == 4 && ushort.TryParse(parts[0], out _) && ushort.TryParse(parts[1], out _)
                && ushort.TryParse(parts[2], out _) && Names.IsDomain(parts[3].TrimEnd('.'))
                ? null : "must be \"priority weight port target\"",
            "MX" => parts.Length == 2 && ushort.TryParse(parts[0], out _) && Names.IsDomain(parts[1].TrimEnd('.'))
                ? null : "must be \"preference exchange\"",
            _ => "type must be A, AAAA, TXT, SRV or MX",
        };
    }
}
