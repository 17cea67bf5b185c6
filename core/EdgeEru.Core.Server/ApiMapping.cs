using EdgeEru.Core.Api;
using EdgeEru.Core.Deploy;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>Between the wire's messages and Core's records: pure, no I/O.</summary>
public static class ApiMapping
{
    /// <summary>Checks a spec: INVALID_ARGUMENT naming every bad field.</summary>
    public static DeploySpec Checked(V1.DeployRequest? r)
    {
        if (r is null) throw Invalid("request is missing");
        DeploySpec spec;
        try
        {
            spec = SpecMapping.ToSpec(r);
        }
        catch (ArgumentException ex)
        {
            throw Invalid(ex.Message);
        }
        var problems = spec.Problems();
        if (problems.Count > 0) throw Invalid("invalid deploy spec: " + string.Join("; ", problems));
        return spec;
    }

    private static RpcException Invalid(string message) => Refused(RefusalKind.Invalid, message);

    /// <summary>The status of a deployer refusal.</summary>
    public static RpcException Refused(RefusalKind kind, string message) => new(new Status(kind switch
    {
        RefusalKind.Invalid => StatusCode.InvalidArgument,
        RefusalKind.NotFound => StatusCode.NotFound,
        RefusalKind.NoCapacity => StatusCode.ResourceExhausted,
        _ => StatusCode.FailedPrecondition,
    }, message));

    public static V1.InstanceResult ToResult(InstanceOutcome o)
    {
        var r = new V1.InstanceResult { Node = o.Node, WorkloadId = o.WorkloadId ?? "", Name = o.Name ?? "", Error = o.Error ?? "" };
        r.Addresses.Add(o.Addresses.ToDictionary());
        if (o.Resources is { } a)
        {
            r.Resources = new V1.Resources
            {
                MemoryRequestBytes = a.MemoryRequestBytes, MemoryLimitBytes = a.MemoryLimitBytes, Cpu = a.CpuRequest,
                CpuBind = a.CpuBind.Length > 0,
            };
            r.CpuCores.Add(a.CpuBind.Select(b => b.Core));
        }
        return r;
    }

    public static Node ToNode(V1.Node n)
    {
        var node = new Node
        {
            Name = n.Name,
            Pod = n.Pod,
            Endpoint = new DockerEndpoint
            {
                Address = n.Endpoint,
                TlsCaPath = n.TlsCaPath.Length > 0 ? n.TlsCaPath : null,
                TlsCertPath = n.TlsCertPath.Length > 0 ? n.TlsCertPath : null,
                TlsKeyPath = n.TlsKeyPath.Length > 0 ? n.TlsKeyPath : null,
            },
            Address = n.Address.Length > 0 ? n.Address : null,
            Address6 = n.Address6.Length > 0 ? n.Address6 : null,
            Labels = StringMap.From(n.Labels),
            Capacity = new NodeCapacity
            {
                CpuCores = n.Capacity?.CpuCores ?? 0,
                PiecesPerCore = n.Capacity is { PiecesPerCore: > 0 } ? n.Capacity.PiecesPerCore : 100,
                MemoryBytes = n.Capacity?.MemoryBytes ?? 0,
                Numa = n.Capacity is null
                    ? []
                    : [.. n.Capacity.Numa.Select(x => new NumaNode { Id = x.Id, Cpus = [.. x.Cpus], MemoryBytes = x.MemoryBytes })],
            },
            Networks = [.. n.Networks],
            Unschedulable = n.Unschedulable,
        };
        return node;
    }

    public static V1.Node FromNode(Node n, bool alive, IEnumerable<Workload> workloads, string? agentUrl = null)
    {
        var list = workloads.ToList();
        var v = new V1.Node
        {
            Name = n.Name,
            Pod = n.Pod,
            Endpoint = n.Endpoint.Address,
            Address = n.Address ?? "",
            Address6 = n.Address6 ?? "",
            Capacity = new V1.NodeCapacity
            {
                CpuCores = n.Capacity.CpuCores, PiecesPerCore = n.Capacity.PiecesPerCore, MemoryBytes = n.Capacity.MemoryBytes,
            },
            Unschedulable = n.Unschedulable,
            Alive = alive,
            Workloads = list.Count,
            MemoryUsedBytes = list.Sum(w => w.Resources.MemoryRequestBytes),
            PiecesUsed = list.Sum(w => w.Resources.CpuBind.Sum(b => b.Pieces)),
            TlsCaPath = n.Endpoint.TlsCaPath ?? "",
            TlsCertPath = n.Endpoint.TlsCertPath ?? "",
            TlsKeyPath = n.Endpoint.TlsKeyPath ?? "",
            AgentUrl = agentUrl ?? "",
        };
        v.Labels.Add(n.Labels.ToDictionary(l => l.Key, l => l.Value));
        v.Networks.Add(n.Networks);
        v.Capacity.Numa.Add(n.Capacity.Numa.Select(x => new V1.NumaNode { Id = x.Id, Cpus = { x.Cpus }, MemoryBytes = x.MemoryBytes }));
        return v;
    }

    public static V1.Workload FromView(WorkloadView w, RegistrySnapshot s)
    {
        var r = w.Record!;
        var v = new V1.Workload
        {
            Id = r.Id, Name = r.Name, App = r.App, Entrypoint = r.Entrypoint, Ident = r.Ident, Pod = r.Pod, Node = r.Node, Image = r.Image,
            Resources = new V1.Resources
            {
                MemoryRequestBytes = r.Resources.MemoryRequestBytes, MemoryLimitBytes = r.Resources.MemoryLimitBytes,
                Cpu = r.Resources.CpuRequest, CpuBind = r.Resources.CpuBind.Length > 0,
            },
            Running = w.Status?.Running ?? false,
            Healthy = w.Status?.Healthy ?? false,
            Live = w.IsLive,
            Reason = s.WhyNotLive(w) ?? "",
            CreatedAt = r.CreatedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        };
        v.Tags.Add(r.Tags);
        foreach (var (net, ip) in w.Addresses()) v.Networks.TryAdd(net, ip);
        foreach (var (net, ip) in w.Addresses6()) v.Networks6.TryAdd(net, ip);
        v.CpuCores.Add(r.Resources.CpuBind.Select(b => b.Core));
        return v;
    }

    /// <summary>A node as ListNodes and WatchNodes give it: liveness and agent URL from its heartbeat, use from its records.</summary>
    public static V1.Node FromNode(Node n, RegistrySnapshot s) =>
        FromNode(n, s.IsNodeAlive(n.Name), s.WorkloadsOn(n.Name), s.NodeStatuses.GetValueOrDefault(n.Name)?.AgentUrl);

    public static V1.SshUser FromSshUser(SshUser u, long revision)
    {
        var v = new V1.SshUser { Name = u.Name, Revision = revision };
        v.Keys.Add(u.Keys);
        foreach (var (app, access) in u.Apps) v.Apps[app] = new V1.SshAppAccess { Shell = access.Shell, User = access.User ?? "" };
        return v;
    }

    public static SshUser ToSshUser(V1.SshUser v) => new()
    {
        Name = v.Name, Keys = [.. v.Keys],
        Apps = v.Apps.ToDictionary(a => a.Key, a => new SshAppAccess
        {
            Shell = a.Value?.Shell ?? false, User = string.IsNullOrEmpty(a.Value?.User) ? null : a.Value.User,
        }, StringComparer.Ordinal),
    };

    public static V1.DnsRecordSet FromDnsRecords(DnsRecordSet d)
    {
        var v = new V1.DnsRecordSet { Name = d.Name };
        v.Records.Add(d.Records.Select(r => new V1.DnsRecord { Type = r.Type, Value = r.Value, Ttl = r.Ttl }));
        return v;
    }

    public static DnsRecordSet ToDnsRecords(V1.DnsRecordSet v) => new()
    {
        Name = v.Name,
        Records = [.. v.Records.Select(r => new StaticDnsRecord { Type = r.Type, Value = r.Value, Ttl = r.Ttl > 0 ? r.Ttl : 60 })],
    };
}
