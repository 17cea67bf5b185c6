using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;
using Google.Protobuf;

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
        Ports = [.. r.Ports.Select(p =>
            new PublishedPort { Name = p.Name, Port = p.Port, Protocol = p.Protocol.Length > 0 ? p.Protocol : "tcp" })],
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
        Volumes = [.. r.Volumes.Select(v => new VolumeSpec(v.Source, v.Target, v.ReadOnly))],
        Files = [.. r.Files.Select(f => new DataFile(f.Path, f.Content.ToByteArray(), f.HasMode ? f.Mode : 0x1A4, f.Uid, f.Gid))],
        Secrets = [.. r.Secrets.Select(x => new SecretMount(x.Name, x.Target.Length > 0 ? x.Target : "/run/secrets/" + x.Name,
            x.HasMode ? x.Mode : 0x100, x.Uid, x.Gid))],
        Runtime = new RuntimeOptions
        {
            Privileged = r.Privileged,
            CapAdd = [.. r.CapAdd],
            Sysctls = r.Sysctls.ToDictionary(),
            Dns = [.. r.Dns],
            ExtraHosts = [.. r.ExtraHosts],
            Ulimits = [.. r.Ulimits.Select(u => new UlimitSpec(u.Name, u.Soft, u.Hard))],
            LogDriver = r.Log?.Driver ?? "",
            LogOptions = r.Log?.Options.ToDictionary() ?? [],
        },
        AfterCreate = r.Hooks is null ? [] : [.. r.Hooks.AfterCreate],
        IgnoreHooks = r.IgnoreHooks,
        IgnorePull = r.IgnorePull,
    };

    public static V1.DeployRequest ToRequest(DeploySpec s)
    {
        var r = new V1.DeployRequest
        {
            App = s.App, Entrypoint = s.Entrypoint, Image = s.Image, WorkingDir = s.WorkingDir ?? "", User = s.User ?? "",
            Restart = s.Restart, Count = s.Count, Pod = s.Pod, PerNodeLimit = s.PerNodeLimit, Force = s.Force,
            Resources = new V1.Resources
            {
                MemoryRequestBytes = s.MemoryRequest, MemoryLimitBytes = s.MemoryLimit, Cpu = s.Cpu, CpuBind = s.CpuBind,
            },
            Strategy = s.Strategy switch
            {
                Strategy.Fill => V1.Strategy.Fill,
                Strategy.Each => V1.Strategy.Each,
                Strategy.Global => V1.Strategy.Global,
                Strategy.Drained => V1.Strategy.Drained,
                _ => V1.Strategy.Auto,
            },
            Hooks = new V1.Hooks { AfterStart = { s.AfterStart }, BeforeStop = { s.BeforeStop }, AfterCreate = { s.AfterCreate } },
            Privileged = s.Runtime.Privileged, IgnoreHooks = s.IgnoreHooks, IgnorePull = s.IgnorePull,
            Log = s.Runtime.LogDriver.Length == 0 && s.Runtime.LogOptions.Count == 0 ? null
                : new V1.LogConfig { Driver = s.Runtime.LogDriver, Options = { s.Runtime.LogOptions.ToDictionary() } },
        };
        r.Volumes.Add(s.Volumes.Select(v => new V1.Volume { Source = v.Source, Target = v.Target, ReadOnly = v.ReadOnly }));
        r.Files.Add(s.Files.Select(f =>
            new V1.DataFile { Path = f.Path, Content = ByteString.CopyFrom(f.Content), Mode = f.Mode, Uid = f.Uid, Gid = f.Gid }));
        r.Secrets.Add(s.Secrets.Select(x =>
            new V1.SecretMount { Name = x.Name, Target = x.Target, Mode = x.Mode, Uid = x.Uid, Gid = x.Gid }));
        r.CapAdd.Add(s.Runtime.CapAdd);
        r.Sysctls.Add(s.Runtime.Sysctls.ToDictionary());
        r.Dns.Add(s.Runtime.Dns);
        r.ExtraHosts.Add(s.Runtime.ExtraHosts);
        r.Ulimits.Add(s.Runtime.Ulimits.Select(u => new V1.Ulimit { Name = u.Name, Soft = u.Soft, Hard = u.Hard }));
        r.Command.Add(s.Command);
        r.Env.Add(s.Env);
        r.Ports.Add(s.Ports.Select(p => new V1.PublishedPort { Name = p.Name, Port = p.Port, Protocol = p.Protocol }));
        if (s.Healthcheck is { } h)
        {
            r.Healthcheck = new V1.HealthCheck
            {
                TcpPorts = { h.TcpPorts }, IntervalMs = h.IntervalMs, TimeoutMs = h.TimeoutMs,
                HealthyAfter = h.HealthyAfter, UnhealthyAfter = h.UnhealthyAfter, StartGraceMs = h.StartGraceMs,
                Http = h.Http is null
                    ? null
                    : new V1.HttpCheck { Port = h.Http.Port, Path = h.Http.Path, ExpectedCode = h.Http.ExpectedCode },
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
