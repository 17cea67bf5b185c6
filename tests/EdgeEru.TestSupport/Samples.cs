using EdgeEru.Registry.Model;

namespace EdgeEru.TestSupport;

/// <summary>Valid registry values for tests, varied by the few fields a test cares about.</summary>
public static class Samples
{
    /// <summary>A real ed25519 public key as an authorized_keys line.</summary>
    public const string SshKeyLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPu+0Hcve7gZNwdjyd3yxaAi6Fr+9VsrNZulrAR5JGAW ops@laptop";

    public static Pod Pod(string name = "dev") => new() { Name = name, Description = "test pod", Labels = StringMap.Of(("zone", "a")) };

    public static Node Node(string name, string pod = "dev", params string[] networks) => new()
    {
        Name = name,
        Pod = pod,
        Endpoint = new DockerEndpoint { Address = $"unix:///run/eru/{name}/docker.sock" },
        Address = "198.18.1.1",
        Labels = StringMap.Of(("disk", "ssd")),
        Capacity = new NodeCapacity
        {
            CpuCores = 4,
            PiecesPerCore = 200,
            MemoryBytes = 8L << 30,
            Numa =
            [
                new NumaNode { Id = "0", Cpus = [0, 1], MemoryBytes = 4L << 30 },
                new NumaNode { Id = "1", Cpus = [2, 3], MemoryBytes = 4L << 30 },
            ],
        },
        Networks = networks.Length == 0 ? ["eru-mv"] : networks,
    };

    public static NodeStatus NodeStatus(string node) => new()
    {
        Node = node,
        HeartbeatAt = DateTimeOffset.UtcNow,
        AgentVersion = "test",
        DockerVersion = "28.2.2",
    };

    /// <summary>A workload; <paramref name="httpPort"/> is the port its "http" port is published on (80 unless given).</summary>
    public static Workload Workload(string id, string app = "shop", string entrypoint = "web", string node = "n1",
        string[]? tags = null, string? ip = null, (string, string)[]? labels = null, int httpPort = 80) => new()
    {
        Id = id,
        Name = $"{app}_{entrypoint}_{Ident(id)}",
        App = app,
        Entrypoint = entrypoint,
        Ident = Ident(id),
        Pod = "dev",
        Node = node,
        Image = "edgeeru/busybox:test",
        Tags = tags ?? ["v1"],
        Labels = StringMap.Of(labels ?? [("team", "core")]),
        Networks = StringMap.Of(("eru-mv", ip ?? "")),
        Ports = [new PublishedPort { Name = "http", Port = httpPort }],
        Resources = new ResourceAllocation
        {
            MemoryRequestBytes = 64L << 20,
            MemoryLimitBytes = 128L << 20,
            CpuRequest = 1.5,
            CpuLimit = 1.5,
            CpuBind = [new CpuBinding { Core = 2, Pieces = 100 }, new CpuBinding { Core = 3, Pieces = 50 }],
            NumaNode = "1",
        },
        Healthcheck = new HealthCheckSpec
        {
            TcpPorts = ["http"],
            Http = new HttpCheck { Port = "http", Path = "/healthz", ExpectedCode = 200 },
            IntervalMs = 1000,
        },
        CreatedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A short DNS-label ident derived from the id, as Core makes one.</summary>
    public static string Ident(string id)
    {
        var alnum = new string(id.ToLowerInvariant().Where(char.IsAsciiLetterOrDigit).ToArray());
        return alnum[..Math.Min(6, alnum.Length)];
    }

    public static WorkloadStatus Status(string id, string node = "n1", bool running = true, bool healthy = true, string? ip = null,
        string? ip6 = null) => new()
    {
        Id = id,
        Node = node,
        Running = running,
        Healthy = healthy,
        Addresses = ip is null ? StringMap.Empty : StringMap.Of(("eru-mv", ip)),
        Addresses6 = ip6 is null ? null : StringMap.Of(("eru-mv", ip6)),
        CheckedAt = DateTimeOffset.UtcNow,
        Reason = healthy ? null : "http /healthz answered 503",
    };

    /// <summary>The canary graph of the dev cluster: X-Canary: 1 or 10% of users (by cookie) to v2, the rest to v1.</summary>
    public static LbDomain LbDomain(string name = "hello.eru.local", string app = "hello") => new()
    {
        Name = name,
        Init = "canary-header",
        Nodes = new()
        {
            ["canary-header"] = new LbNode
            {
                Type = "header", Name = "X-Canary", Match = "exact", Value = "1", Succ = "v2", Fail = "split",
            },
            ["split"] = new LbNode { Type = "percent", Key = "cookie:uid", Percent = 10, Succ = "v2", Fail = "v1" },
            ["v1"] = new LbNode
            {
                Type = "backend",
                Select = new LbSelector { App = app, Entrypoint = "web", Port = "http", Tags = ["v1"] },
            },
            ["v2"] = new LbNode
            {
                Type = "backend",
                Select = new LbSelector { App = app, Entrypoint = "web", Port = "http", Tags = ["v2"] },
                Fallback = new LbSelector { Tags = ["v1"] },
            },
        },
    };
}
