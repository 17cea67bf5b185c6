using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Perf;

/// <summary>A synthetic registry shared by the benchmarks: nodes, services, workloads with realistic values.</summary>
internal static class BenchCluster
{
    public static string NodeName(int i) => $"node-{i:D3}";

    /// <summary>A Docker container id: 64 hex digits, as Core records them.</summary>
    public static string Id(int i) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    public static string Ident(int i) => $"{i:x6}";

    /// <summary>Workload i belongs to service i % services: app{s/2}, entrypoint web or worker.</summary>
    public static (string App, string Entrypoint) Service(int i, int services)
    {
        var s = i % services;
        return ($"app{s / 2}", s % 2 == 0 ? "web" : "worker");
    }

    public static string Ip(int i) => $"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}";

    public static string Tag(int i) => i % 10 == 0 ? "canary" : "stable";

    public static Node Node(int i) => new()
    {
        Name = NodeName(i),
        Pod = "bench",
        Address = $"198.19.255.{i % 250}",
        Endpoint = new DockerEndpoint
        {
            Address = $"tcp://10.0.{i / 250}.{i % 250}:2376", TlsCertPath = "/etc/eru/tls/cert.pem", TlsKeyPath = "/etc/eru/tls/key.pem",
        },
        Capacity = new NodeCapacity { CpuCores = 64, PiecesPerCore = 200, MemoryBytes = 256L << 30 },
        Networks = ["eru-mv"],
    };

    public static Workload Workload(int i, int nodes, int services, string version = "v1")
    {
        var (app, entrypoint) = Service(i, services);
        return new Workload
        {
            Id = Id(i),
            Name = $"{app}_{entrypoint}_{Ident(i)}",
            App = app,
            Entrypoint = entrypoint,
            Ident = Ident(i),
            Pod = "bench",
            Node = NodeName(i % nodes),
            Image = $"registry.local/{app}:{version}",
            Tags = [version, Tag(i)],
            Labels = StringMap.Of(("team", $"team{i % 7}"), ("tier", "frontend")),
            Networks = StringMap.Of(("eru-mv", Ip(i))),
            Ports = [new PublishedPort { Name = "http", Port = 8080 }],
            Resources = new ResourceAllocation
            {
                MemoryRequestBytes = 512L << 20, MemoryLimitBytes = 1L << 30, CpuRequest = 0.5, CpuLimit = 1,
            },
            Healthcheck = new HealthCheckSpec { Http = new HttpCheck { Port = "http", Path = "/healthz" }, TcpPorts = ["http"] },
            CreatedAt = DateTimeOffset.UnixEpoch.AddSeconds(1_790_000_000 + i),
        };
    }

    public static WorkloadStatus Status(int i, int nodes, bool healthy) => new()
    {
        Id = Id(i),
        Node = NodeName(i % nodes),
        Running = true,
        Healthy = healthy,
        Addresses = StringMap.Of(("eru-mv", Ip(i))),
        CheckedAt = DateTimeOffset.UnixEpoch.AddSeconds(1_790_000_000 + i),
        Reason = healthy ? null : "http /healthz: 503",
    };

    /// <summary>
    /// Writes nodes with heartbeats and healthy workloads, statuses under <paramref name="lease"/>, 4 transactions at a time.
    /// </summary>
    public static async Task LoadAsync(RegistryStore store, long lease, int workloads, int services, int nodes)
    {
        for (var n = 0; n < nodes; n += 60)
        {
            var tx = store.Begin();
            for (var i = n; i < Math.Min(nodes, n + 60); i++)
            {
                tx.Put(Kinds.Nodes, Node(i));
                tx.Put(Kinds.NodeStatus, new NodeStatus { Node = NodeName(i), HeartbeatAt = DateTimeOffset.UtcNow }, lease);
            }
            if (!await tx.CommitAsync()) throw new InvalidOperationException("load transaction failed");
        }
        const int batch = 60; // etcd's default limit is 128 operations per transaction
        await Parallel.ForEachAsync(Enumerable.Range(0, (workloads + batch - 1) / batch),
            new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (b, ct) =>
        {
            var tx = store.Begin();
            for (var i = b * batch; i < Math.Min(workloads, (b + 1) * batch); i++)
            {
                tx.Put(Kinds.Workloads, Workload(i, nodes, services));
                tx.Put(Kinds.WorkloadStatus, Status(i, nodes, healthy: true), lease);
            }
            if (!await tx.CommitAsync(ct)) throw new InvalidOperationException("load transaction failed");
        });
    }

    public static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) && v > 0 ? v : fallback;
    }

    public static string ArgString(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
