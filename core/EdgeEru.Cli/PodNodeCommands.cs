using System.CommandLine;
using Google.Protobuf;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru pod add|rm|ls</c> and <c>eru node add|rm|ls|set</c> through eru-core's API.</summary>
internal static class PodNodeCommands
{
    public static Command Pod()
    {
        var api = new CoreApi();
        var name = new Argument<string>("name") { Description = "Pod name (a DNS label)" };
        var description = new Option<string>("--description") { DefaultValueFactory = _ => "" };
        var labels = new Option<string[]>("--label") { Description = "NAME=VALUE, repeatable" };

        var add = new Command("add", "Add a pod") { name, description, labels };
        add.SetAction((pr, ct) => api.RunAsync(pr, "pod add", async (c, t) =>
        {
            var req = new V1.AddPodRequest { Name = pr.GetValue(name)!, Description = pr.GetValue(description)! };
            req.Labels.Add(CliText.Pairs(pr.GetValue(labels), "--label"));
            Print(pr.GetValue(api.Json), await c.AddPodAsync(req, cancellationToken: t), $"pod {req.Name} added");
            return 0;
        }, ct));

        var rm = new Command("rm", "Remove a pod (it must have no nodes)") { name };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "pod rm", async (c, t) =>
        {
            await c.RemovePodAsync(new V1.RemovePodRequest { Name = pr.GetValue(name)! }, cancellationToken: t);
            Console.WriteLine($"pod {pr.GetValue(name)} removed");
            return 0;
        }, ct));

        var ls = new Command("ls", "List pods");
        ls.SetAction((pr, ct) => api.RunAsync(pr, "pod ls", async (c, t) =>
        {
            var reply = await c.ListPodsAsync(new V1.ListPodsRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["POD", "NODES", "DESCRIPTION"], reply.Pods.Select(p => new[]
                { p.Name, p.Nodes.ToString(System.Globalization.CultureInfo.InvariantCulture), p.Description }));
            return 0;
        }, ct));

        var cmd = new Command("pod", "Pods: groups of nodes that deploys target") { add, rm, ls };
        api.AddTo(cmd);
        return cmd;
    }

    public static Command Node()
    {
        var api = new CoreApi();
        var name = new Argument<string>("name") { Description = "Node name (a DNS label)" };
        var pod = new Option<string>("--pod") { Description = "The node's pod", Required = true };
        var endpoint = new Option<string>("--endpoint")
        {
            Description = "Docker endpoint: unix:///path or tcp://host:port", Required = true,
        };
        var address = new Option<string>("--address")
        {
            Description = "The node's own address (for node names in DNS)", DefaultValueFactory = _ => "",
        };
        var address6 = new Option<string>("--address6")
        {
            Description = "The node's own IPv6 address (AAAA of its node name in DNS)", DefaultValueFactory = _ => "",
        };
        var cpus = new Option<int>("--cpus") { Description = "CPU cores (default: what Docker reports)" };
        var pieces = new Option<int>("--pieces-per-core")
        {
            Description = "100 = no oversell, 200 = each core bound twice", DefaultValueFactory = _ => 100,
        };
        var memory = new Option<string?>("--memory") { Description = "Memory, e.g. 16G (default: what Docker reports)" };
        var labels = new Option<string[]>("--label") { Description = "NAME=VALUE, repeatable" };
        var networks = new Option<string[]>("--network") { Description = "Docker networks containers may join, repeatable" };
        var tlsCa = new Option<string>("--tls-ca")
        {
            Description = "PEM CA the engine's certificate must chain to (TLS endpoints)", DefaultValueFactory = _ => "",
        };
        var tlsCert = new Option<string>("--tls-cert")
        {
            Description = "PEM client certificate for a --tlsverify engine", DefaultValueFactory = _ => "",
        };
        var tlsKey = new Option<string>("--tls-key") { Description = "PEM key of the client certificate", DefaultValueFactory = _ => "" };

        var add = new Command("add", "Add a node; its Docker engine must answer")
            { name, pod, endpoint, address, address6, cpus, pieces, memory, labels, networks, tlsCa, tlsCert, tlsKey };
        add.SetAction((pr, ct) => api.RunAsync(pr, "node add", async (c, t) =>
        {
            var node = new V1.Node
            {
                Name = pr.GetValue(name)!, Pod = pr.GetValue(pod)!, Endpoint = pr.GetValue(endpoint)!, Address = pr.GetValue(address)!,
                Address6 = pr.GetValue(address6)!,
                Capacity = new V1.NodeCapacity
                {
                    CpuCores = pr.GetValue(cpus), PiecesPerCore = pr.GetValue(pieces),
                    MemoryBytes = CliText.Size(pr.GetValue(memory), "--memory"),
                },
                TlsCaPath = pr.GetValue(tlsCa)!, TlsCertPath = pr.GetValue(tlsCert)!, TlsKeyPath = pr.GetValue(tlsKey)!,
            };
            node.Labels.Add(CliText.Pairs(pr.GetValue(labels), "--label"));
            node.Networks.Add(pr.GetValue(networks) ?? []);
            var added = await c.AddNodeAsync(new V1.AddNodeRequest { Node = node }, cancellationToken: t);
            Print(pr.GetValue(api.Json), added, $"node {added.Name} added to pod {added.Pod}: " +
                $"{added.Capacity.CpuCores} cores, {CliText.Bytes(added.Capacity.MemoryBytes)} memory");
            return 0;
        }, ct));

        var force = new Option<bool>("--force") { Description = "Even though workloads are still recorded on it" };
        var rm = new Command("rm", "Remove a node") { name, force };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "node rm", async (c, t) =>
        {
            await c.RemoveNodeAsync(
                new V1.RemoveNodeRequest { Name = pr.GetValue(name)!, Force = pr.GetValue(force) }, cancellationToken: t);
            Console.WriteLine($"node {pr.GetValue(name)} removed");
            return 0;
        }, ct));

        var podFilter = new Option<string>("--pod") { Description = "Only this pod", DefaultValueFactory = _ => "" };
        var ls = new Command("ls", "List nodes: capacity, use, alive") { podFilter };
        ls.SetAction((pr, ct) => api.RunAsync(pr, "node ls", async (c, t) =>
        {
            var reply = await c.ListNodesAsync(new V1.ListNodesRequest { Pod = pr.GetValue(podFilter)! }, cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["NODE", "POD", "ALIVE", "SCHEDULABLE", "CPUS", "BOUND", "MEMORY USED", "WORKLOADS", "ENDPOINT"],
                reply.Nodes.Select(n => new[]
            {
                n.Name, n.Pod, n.Alive ? "yes" : "no", n.Unschedulable ? "no (bypass)" : "yes",
                n.Capacity.CpuCores.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"{n.PiecesUsed / 100.0:0.##}/{n.Capacity.CpuCores * n.Capacity.PiecesPerCore / 100.0:0.##}",
                $"{CliText.Bytes(n.MemoryUsedBytes)}/{CliText.Bytes(n.Capacity.MemoryBytes)}",
                n.Workloads.ToString(System.Globalization.CultureInfo.InvariantCulture), n.Endpoint,
            }));
            return 0;
        }, ct));

        var unschedulable = new Option<bool?>("--unschedulable") { Description = "true: no new workloads here (bypass); false: back in" };
        var removeLabels = new Option<string[]>("--remove-label") { Description = "Label names to drop, repeatable" };
        var set = new Command("set", "Change a node's labels or schedulability; its workloads stay")
            { name, unschedulable, labels, removeLabels };
        set.SetAction((pr, ct) => api.RunAsync(pr, "node set", async (c, t) =>
        {
            var req = new V1.SetNodeRequest { Name = pr.GetValue(name)! };
            if (pr.GetValue(unschedulable) is { } u) req.Unschedulable = u;
            req.SetLabels.Add(CliText.Pairs(pr.GetValue(labels), "--label"));
            req.RemoveLabels.Add(pr.GetValue(removeLabels) ?? []);
            var n = await c.SetNodeAsync(req, cancellationToken: t);
            Print(pr.GetValue(api.Json), n, $"node {n.Name}: {(n.Unschedulable ? "unschedulable" : "schedulable")}, " +
                $"labels {string.Join(",", n.Labels.Select(l => $"{l.Key}={l.Value}"))}");
            return 0;
        }, ct));

        var cmd = new Command("node", "Nodes: Docker hosts with their capacity") { add, rm, ls, set };
        api.AddTo(cmd);
        return cmd;
    }

    public static void Print(bool json, IMessage message, string human) =>
        Console.WriteLine(json ? JsonFormatter.Default.Format(message) : human);
}
