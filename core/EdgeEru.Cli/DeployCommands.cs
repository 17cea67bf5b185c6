using System.CommandLine;
using System.Globalization;
using EdgeEru.Core.Api;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Scheduling;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru deploy|capacity|replace|rm|start|stop|restart</c> through eru-core's API.</summary>
internal static class DeployCommands
{
    /// <summary>An app spec file plus the deploy options of the command line, the way ERU took them.</summary>
    internal sealed class SpecOptions
    {
        public Argument<FileInfo> File { get; } = new("app.yaml")
        {
            Description = "App spec (appname, entrypoints with cmd, ports, healthcheck, restart, hook)",
        };
        public Option<string?> Entrypoint { get; } = new("--entrypoint", "-e") { Description = "Which entrypoint (default: the only one)" };
        public Option<string> Image { get; } = new("--image") { Description = "Image to run", DefaultValueFactory = _ => "" };
        public Option<int> Count { get; } = new("--count", "-n") { Description = "Instances", DefaultValueFactory = _ => 1 };
        public Option<string> Pod { get; } = new("--pod") { Description = "Target pod", Required = true };
        public Option<string[]> Nodes { get; } = new("--node") { Description = "Only these nodes, repeatable" };
        public Option<string[]> NodeLabels { get; } = new("--node-label") { Description = "Only nodes with NAME=VALUE, repeatable" };
        public Option<string[]> ExcludeNodeLabels { get; } = new("--exclude-node-label")
        {
            Description = "No node with NAME=VALUE, repeatable",
        };
        public Option<string[]> Networks { get; } = new("--network")
        {
            Description = "Docker network, or NETWORK=IPV4, NETWORK=IPV4,IPV6 or NETWORK=,IPV6 for fixed addresses, repeatable",
        };
        public Option<string[]> Tags { get; } = new("--tag") { Description = "Tags (DNS subsets, LB selectors), repeatable" };
        public Option<string[]> Labels { get; } = new("--label") { Description = "NAME=VALUE, repeatable" };
        public Option<string[]> Env { get; } = new("--env") { Description = "NAME=VALUE, repeatable" };
        public Option<string?> Memory { get; } = new("--memory") { Description = "Memory request, e.g. 256M" };
        public Option<string?> MemoryLimit { get; } = new("--memory-limit") { Description = "Memory limit (default: the request)" };
        public Option<double> Cpu { get; } = new("--cpu")
        {
            Description = "CPUs (a CFS quota, or with --cpu-bind whole and fragment cores)",
        };
        public Option<bool> CpuBind { get; } = new("--cpu-bind") { Description = "Bind CPUs (cpuset)" };
        public Option<Strategy> Strategy { get; } = new("--strategy")
        {
            Description = "auto, fill, each, global, drained", DefaultValueFactory = _ => Core.Scheduling.Strategy.Auto,
        };
        public Option<int> PerNodeLimit { get; } = new("--per-node-limit") { Description = "At most this many of the app per node" };
        public Option<bool> Force { get; } = new("--force") { Description = "Use named nodes even without a heartbeat" };
        public Option<string[]> Volumes { get; } = new("--volume", "-v")
        {
            Description = "NAME:/target or /host/path:/target[:ro], repeatable (added to the spec's)",
        };
        public Option<string[]> Secrets { get; } = new("--secret")
        {
            Description = "NAME or NAME:/target (default /run/secrets/NAME), repeatable",
        };
        public Option<bool> IgnoreHook { get; } = new("--ignore-hook") { Description = "Skip the after_create and after_start hooks" };
        public Option<bool> IgnorePull { get; } = new("--ignore-pull") { Description = "Never pull: the image must be on the node" };

        public IEnumerable<Symbol> All =>
            [File, Entrypoint, Image, Count, Pod, Nodes, NodeLabels, ExcludeNodeLabels, Networks, Tags, Labels, Env,
            Memory, MemoryLimit, Cpu, CpuBind, Strategy, PerNodeLimit, Force, Volumes, Secrets, IgnoreHook, IgnorePull];

        public async Task<V1.DeployRequest> RequestAsync(ParseResult pr, CancellationToken ct)
        {
            var file = pr.GetValue(File)!;
            if (!file.Exists) throw new FormatException($"{file.FullName} does not exist");
            var app = AppSpec.Parse(await System.IO.File.ReadAllTextAsync(file.FullName, ct));
            var entrypoint = pr.GetValue(Entrypoint) ?? (app.Entrypoints.Count == 1 ? app.Entrypoints.Keys.First()
                : throw new FormatException(
                    $"{file.Name} has {app.Entrypoints.Count} entrypoints ({string.Join(", ", app.Entrypoints.Keys)}): " +
                    "pick one with --entrypoint"));
            var memory = CliText.Size(pr.GetValue(Memory), "--memory");
            var options = new DeploySpec
            {
                App = app.Appname, Entrypoint = entrypoint, Image = pr.GetValue(Image)!, Pod = pr.GetValue(Pod)!,
                Count = pr.GetValue(Count),
                Nodes = pr.GetValue(Nodes) ?? [], NodeLabels = CliText.Pairs(pr.GetValue(NodeLabels), "--node-label"),
                ExcludeNodeLabels = CliText.Pairs(pr.GetValue(ExcludeNodeLabels), "--exclude-node-label"),
                Networks = CliText.Pairs(pr.GetValue(Networks), "--network", valueOptional: true),
                Tags = pr.GetValue(Tags) ?? [], Labels = CliText.Pairs(pr.GetValue(Labels), "--label"),
                Env = [.. CliText.Pairs(pr.GetValue(Env), "--env").Select(kv => $"{kv.Key}={kv.Value}")],
                MemoryRequest = memory, MemoryLimit = pr.GetValue(MemoryLimit) is { } l ? CliText.Size(l, "--memory-limit") : memory,
                Cpu = pr.GetValue(Cpu), CpuBind = pr.GetValue(CpuBind), Strategy = pr.GetValue(Strategy),
                PerNodeLimit = pr.GetValue(PerNodeLimit), Force = pr.GetValue(Force),
                Volumes = [.. (pr.GetValue(Volumes) ?? []).Select(v => VolumeSpec.Parse(v, "--volume"))],
                Secrets = [.. (pr.GetValue(Secrets) ?? []).Select(x => x.Split(':', 2) is [var n, var t]
                    ? new SecretMount(n, t)
                    : new SecretMount(x, "/run/secrets/" + x))],
                IgnoreHooks = pr.GetValue(IgnoreHook), IgnorePull = pr.GetValue(IgnorePull),
            };
            // A data file's file: is read here, relative to the spec's folder: the request carries its content.
            var folder = file.DirectoryName ?? ".";
            return SpecMapping.ToRequest(app.ToDeploySpec(entrypoint, options, f => System.IO.File.ReadAllBytes(Path.Combine(folder, f))));
        }
    }

    public static IEnumerable<Command> Create()
    {
        var api = new CoreApi();

        var spec = new SpecOptions();
        var deploy = new Command("deploy", "Deploy instances of an app spec's entrypoint; shows each instance as it is created");
        foreach (var s in spec.All) Add(deploy, s);
        deploy.SetAction((pr, ct) => api.RunAsync(pr, "deploy", async (c, t) =>
            await StreamAsync(c.Deploy(await spec.RequestAsync(pr, t), cancellationToken: t), pr.GetValue(api.Json), t), ct));

        var cspec = new SpecOptions();
        var capacity = new Command("capacity", "How many instances would fit, per node (a dry run: nothing is created)");
        foreach (var s in cspec.All) Add(capacity, s);
        capacity.SetAction((pr, ct) => api.RunAsync(pr, "capacity", async (c, t) =>
        {
            var reply = await c.CapacityAsync(new V1.CapacityRequest { Request = await cspec.RequestAsync(pr, t) }, cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else
            {
                CliText.Table(["NODE", "FITS", "EXISTING", "WHY NOT"], reply.Nodes.Select(n => new[]
                    {
                        n.Node, n.Capacity.ToString(CultureInfo.InvariantCulture), n.Existing.ToString(CultureInfo.InvariantCulture),
                        n.Reason,
                    }));
                Console.WriteLine($"total: {reply.Total}");
            }
            return 0;
        }, ct));

        var rspec = new SpecOptions();
        var batch = new Option<int>("--batch-size") { Description = "Old instances replaced at a time", DefaultValueFactory = _ => 1 };
        var healthTimeout = new Option<int>("--health-timeout")
        {
            Description = "Seconds a new instance may take to be reported healthy", DefaultValueFactory = _ => 60,
        };
        var onlyTags = new Option<string[]>("--only-tag") { Description = "Replace only instances with this tag, repeatable" };
        var keepIp = new Option<bool>("--keep-ip")
        {
            Description = "Each new instance takes over its old one's addresses (same node): " +
                "the old one stops first and is restarted if the new one fails",
        };
        var maxUnavailable = new Option<int>("--max-unavailable")
        {
            Description = "Old instances per batch that may go before their replacement is up, when there is no room beside them",
        };
        var allowDataLoss = new Option<bool>("--allow-data-loss")
        {
            Description = "Go on when a replacement loses volume data (a named volume dropped from the spec, or no room back on its node)",
        };
        maxUnavailable.Validators.Add(r =>
        {
            if (r.GetValue(maxUnavailable) < 0) r.AddError("--max-unavailable must not be negative");
        });
        var replace = new Command(
            "replace", "Rolling replace: new instances must be healthy before old ones go; a failed batch stops the rollout")
            { batch, healthTimeout, onlyTags, keepIp, maxUnavailable, allowDataLoss };
        foreach (var s in rspec.All) Add(replace, s);
        replace.SetAction((pr, ct) => api.RunAsync(pr, "replace", async (c, t) =>
        {
            var req = new V1.ReplaceRequest { Request = await rspec.RequestAsync(pr, t), BatchSize = pr.GetValue(batch),
                HealthTimeoutMs = pr.GetValue(healthTimeout) * 1000, KeepIp = pr.GetValue(keepIp),
                MaxUnavailable = pr.GetValue(maxUnavailable),
                AllowDataLoss = pr.GetValue(allowDataLoss) };
            req.OnlyTags.Add(pr.GetValue(onlyTags) ?? []);
            return await StreamAsync(c.Replace(req, cancellationToken: t), pr.GetValue(api.Json), t);
        }, ct));

        var workloads = new Argument<string[]>("workload")
        {
            Description = "Workload ids (or 6+ character prefixes) or names", Arity = ArgumentArity.OneOrMore,
        };
        var stopTimeout = new Option<int>("--stop-timeout")
        {
            Description = "Seconds between SIGTERM and SIGKILL", DefaultValueFactory = _ => 10,
        };
        var ignoreHook = new Option<bool>("--ignore-hook") { Description = "Skip before_stop (and after_start on start/restart)" };
        var rm = new Command("rm", "Remove workloads: before_stop hooks, stop, remove, forget; their named volumes go with them")
            { workloads, stopTimeout, ignoreHook };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "rm", async (c, t) =>
        {
            var req = new V1.RemoveRequest { StopTimeoutS = pr.GetValue(stopTimeout), IgnoreHooks = pr.GetValue(ignoreHook) };
            req.Workloads.Add(pr.GetValue(workloads)!);
            return await ResultsAsync(c.Remove(req, cancellationToken: t), pr.GetValue(api.Json), "removed", t);
        }, ct));

        var controls = new[]
            {
                ("start", V1.ControlAction.Start, "Start stopped workloads"),
                ("stop", V1.ControlAction.Stop, "Stop workloads (they stay recorded)"),
                ("restart", V1.ControlAction.Restart, "Restart workloads"),
            }
            .Select(x =>
            {
                var cmd = new Command(x.Item1, x.Item3) { workloads, stopTimeout, ignoreHook };
                cmd.SetAction((pr, ct) => api.RunAsync(pr, x.Item1, async (c, t) =>
                {
                    var req = new V1.ControlRequest
                    {
                        Action = x.Item2, StopTimeoutS = pr.GetValue(stopTimeout), IgnoreHooks = pr.GetValue(ignoreHook),
                    };
                    req.Workloads.Add(pr.GetValue(workloads)!);
                    return await ResultsAsync(c.Control(req, cancellationToken: t), pr.GetValue(api.Json),
                        x.Item1 + (x.Item1.EndsWith('p') ? "ped" : "ed"), t);
                }, ct));
                return cmd;
            });

        var targets = new Argument<string[]>("workload")
        {
            Description = "Workload names, ids (or 6+ character prefixes), or APP / APP.ENTRYPOINT for all of its instances",
            Arity = ArgumentArity.OneOrMore,
        };
        var memory = new Option<string?>("--memory")
        {
            Description = "New memory request, e.g. 256M (the limit follows when it equalled the request)",
        };
        var memoryLimit = new Option<string?>("--memory-limit") { Description = "New memory limit" };
        var cpu = new Option<double?>("--cpu") { Description = "New CPU request (a CFS quota, or bound cores with --cpu-bind)" };
        var cpuLimit = new Option<double?>("--cpu-limit") { Description = "New CFS quota of an unbound workload (default: follows --cpu)" };
        var cpuBind = new Option<bool?>("--cpu-bind")
        {
            Description = "true: bind cores (cpuset), keeping the current ones where possible; false: a CFS quota",
        };
        var realloc = new Command("realloc", "Change resources of running workloads in place (docker update); " +
            "refused per workload, with the reason, when it does not fit on its node")
            { targets, memory, memoryLimit, cpu, cpuLimit, cpuBind };
        realloc.SetAction((pr, ct) => api.RunAsync(pr, "realloc", async (c, t) =>
        {
            var req = new V1.ReallocRequest();
            req.Workloads.Add(pr.GetValue(targets)!);
            if (pr.GetValue(memory) is { } m) req.MemoryRequestBytes = CliText.Size(m, "--memory");
            if (pr.GetValue(memoryLimit) is { } ml) req.MemoryLimitBytes = CliText.Size(ml, "--memory-limit");
            if (pr.GetValue(cpu) is { } cp) req.Cpu = cp;
            if (pr.GetValue(cpuLimit) is { } cl) req.CpuLimit = cl;
            if (pr.GetValue(cpuBind) is { } b) req.CpuBind = b;
            using var call = c.Realloc(req, cancellationToken: t);
            var failed = 0;
            await foreach (var r in call.ResponseStream.ReadAllAsync(t))
            {
                if (r.Error.Length > 0) failed++;
                var now = r.Resources is null ? "" : $"memory {CliText.Bytes(r.Resources.MemoryRequestBytes)}/"
                    + $"{CliText.Bytes(r.Resources.MemoryLimitBytes)}, cpu {r.Resources.Cpu.ToString(CultureInfo.InvariantCulture)}"
                    + (r.CpuCores.Count > 0 ? $" bound to {string.Join(",", r.CpuCores)}" : "");
                Console.WriteLine(pr.GetValue(api.Json) ? JsonFormatter.Default.Format(r)
                    : r.Error.Length == 0 ? $"reallocated {r.Name} ({r.Node}): {now}" : $"refused {r.Name} ({r.Node}): {r.Error}");
            }
            return failed > 0 ? 1 : 0;
        }, ct));

        var all = new List<Command> { deploy, capacity, replace, realloc, rm };
        all.AddRange(controls);
        foreach (var c in all) api.AddTo(c);
        return all;
    }

    internal static void Add(Command c, Symbol s)
    {
        if (s is Argument a) c.Arguments.Add(a);
        else c.Options.Add((Option)s);
    }

    /// <summary>Prints deploy events as they come (one line per instance), then the summary; exit 1 if any instance failed.</summary>
    private static async Task<int> StreamAsync(AsyncServerStreamingCall<V1.DeployEvent> call, bool json, CancellationToken ct)
    {
        using (call)
        {
            var failed = 0;
            await foreach (var e in call.ResponseStream.ReadAllAsync(ct))
            {
                if (json)
                {
                    Console.WriteLine(JsonFormatter.Default.Format(e));
                    if (e.Instance is { Error.Length: > 0 }) failed++;
                    continue;
                }
                switch (e.EventCase)
                {
                    case V1.DeployEvent.EventOneofCase.Planned:
                        Console.WriteLine("plan: " + string.Join(", ",
                            e.Planned.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} ×{p.Value}")));
                        break;
                    case V1.DeployEvent.EventOneofCase.Instance:
                        var i = e.Instance;
                        if (i.Error.Length > 0) failed++;
                        Console.WriteLine(i.Error.Length == 0
                            ? $"  ✓ {i.Node,-8} {i.Name}  {string.Join(" ", i.Addresses.Select(a => a.Value))}  {Short(i.WorkloadId)}"
                            : $"  ✗ {i.Node,-8} {i.Name}  {i.Error}");
                        break;
                    case V1.DeployEvent.EventOneofCase.Note:
                        Console.WriteLine("  " + e.Note);
                        break;
                    case V1.DeployEvent.EventOneofCase.Summary:
                        Console.WriteLine($"{e.Summary.Created} created, {e.Summary.Failed} failed");
                        break;
                }
            }
            return failed > 0 ? 1 : 0;
        }
    }

    private static async Task<int> ResultsAsync(
        AsyncServerStreamingCall<V1.InstanceResult> call, bool json, string done, CancellationToken ct)
    {
        using (call)
        {
            var failed = 0;
            await foreach (var r in call.ResponseStream.ReadAllAsync(ct))
            {
                if (r.Error.Length > 0) failed++;
                Console.WriteLine(json ? JsonFormatter.Default.Format(r)
                    : r.Error.Length == 0 ? $"{done} {r.Name} ({r.Node})" : $"failed {r.Name} ({r.Node}): {r.Error}");
            }
            return failed > 0 ? 1 : 0;
        }
    }

    private static string Short(string id) => id.Length > 12 ? id[..12] : id;
}
