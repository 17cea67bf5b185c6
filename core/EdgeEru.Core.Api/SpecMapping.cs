using EdgeEru.Core.Deploy;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Api;

/// <summary>Deploy specs on the wire and in Core, both ways (the CLI sends, eru-core receives): pure.</summary>
public static class SpecMapping
{
    public static DeploySpec ToSpec(V1.DeployRequest r) => new()
    {
        App = r.App,
        Entrypoint = r.Entrypoint,
        Image = r.Image,
        Command = [.. r.Command],
        WorkingDir = r.WorkingDir.Length > 0 ? r.WorkingDir : null,
        Env = [.. r.Env],
        User = r.User.Length > 0 ? r.User : null,
        Ports = [.. r.Ports.Select(p => new PublishedPort { Name = p.Name, Port = p.Port, Protocol = p.Protocol.Length > 0 ? p.Protocol : "tcp" })],
        Healthcheck = r.Healthcheck is null ? null : new HealthCheckSpec
        {
            TcpPorts = [.. r.Healthcheck.TcpPorts],
            Http = r.Healthcheck.Http is null ? null : new HttpCheck
            {
                Port = r.Healthcheck.Http.Port,
                Path = r.Healthcheck.Http.Path.Length > 0 ? r.Healthcheck.Http.Path : "/",
                ExpectedCode = r.Healthcheck.Http.ExpectedCode,
            },
            IntervalMs = r.Healthcheck.IntervalMs > 0 ? r.Healthcheck.IntervalMs : 5000,
            TimeoutMs = r.Healthcheck.TimeoutMs > 0 ? r.Healthcheck.TimeoutMs : 2000,
            HealthyAfter = r.Healthcheck.HealthyAfter > 0 ? r.Healthcheck.HealthyAfter : 1,
            UnhealthyAfter = r.Healthcheck.UnhealthyAfter > 0 ? r.Healthcheck.UnhealthyAfter : 3,
            StartGraceMs = r.Healthcheck.StartGraceMs,
        },
        Restart = r.Restart,
        AfterStart = r.Hooks is null ? [] : [.. r.Hooks.AfterStart],
        BeforeStop = r.Hooks is null ? [] : [.. r.Hooks.BeforeStop],
        Count = r.Count,
        Pod = r.Pod,
        Nodes = [.. r.Nodes],
        NodeLabels = r.NodeLabels.ToDictionary(),
        ExcludeNodeLabels = r.ExcludeNodeLabels.ToDictionary(),
        Networks = r.Networks.ToDictionary(),
        Tags = [.. r.Tags],
        Labels = r.Labels.ToDictionary(),
        MemoryRequest = r.Resources?.MemoryRequestBytes ?? 0,
        MemoryLimit = r.Resources?.MemoryLimitBytes ?? 0,
        Cpu = r.Resources?.Cpu ?? 0,
        CpuBind = r.Resources?.CpuBind ?? false,
        Strategy = r.Strategy switch
        {
            V1.Strategy.Auto => Strategy.Auto,
            V1.Strategy.Fill => Strategy.Fill,
            V1.Strategy.Each => Strategy.Each,
            V1.Strategy.Global => Strategy.Global,
            V1.Strategy.Drained => Strategy.Drained,
            _ => throw new ArgumentException($"strategy {(int)r.Strategy} is unknown", nameof(r)),
        },
        PerNodeLimit = r.PerNodeLimit,
        Force = r.Force,
    };

    public static V1.DeployRequest ToRequest(DeploySpec s)
    {
        var r = new V1.DeployRequest
        {
            App = s.App, Entrypoint = s.Entrypoint, Image = s.Image, WorkingDir = s.WorkingDir ?? "", User = s.User ?? "",
            Restart = s.Restart, Count = s.Count, Pod = s.Pod, PerNodeLimit = s.PerNodeLimit, Force = s.Force,
            Resources = new V1.Resources { MemoryRequestBytes = s.MemoryRequest, MemoryLimitBytes = s.MemoryLimit, Cpu = s.Cpu, CpuBind = s.CpuBind },
            Strategy = s.Strategy switch
            {
                Strategy.Fill => V1.Strategy.Fill,
                Strategy.Each => V1.Strategy.Each,
                Strategy.Global => V1.Strategy.Global,
                Strategy.Drained => V1.Strategy.Drained,
                _ => V1.Strategy.Auto,
            },
            Hooks = new V1.Hooks { AfterStart = { s.AfterStart }, BeforeStop = { s.BeforeStop } },
        };
        r.Command.Add(s.Command);
        r.Env.Add(s.Env);
        r.Ports.Add(s.Ports.Select(p => new V1.PublishedPort { Name = p.Name, Port = p.Port, Protocol = p.Protocol }));
        if (s.Healthcheck is { } h)
        {
            r.Healthcheck = new V1.HealthCheck
            {
                TcpPorts = { h.TcpPorts }, IntervalMs = h.IntervalMs, TimeoutMs = h.TimeoutMs,
                HealthyAfter = h.HealthyAfter, UnhealthyAfter = h.UnhealthyAfter, StartGraceMs = h.StartGraceMs,
                Http = h.Http is null ? null : new V1.HttpCheck { Port = h.Http.Port, Path = h.Http.Path, ExpectedCode = h.Http.ExpectedCode },
            };
        }
        r.Nodes.Add(s.Nodes);
        r.NodeLabels.Add(s.NodeLabels.ToDictionary());
        r.ExcludeNodeLabels.Add(s.ExcludeNodeLabels.ToDictionary());
        r.Networks.Add(s.Networks.ToDictionary());
        r.Tags.Add(s.Tags);
        r.Labels.Add(s.Labels.ToDictionary());
        return r;
    }
}
