using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru ps [APP]</c>: workloads as eru-core sees them (ListWorkloads), with whether each is live and why not.</summary>
internal static class PsCommand
{
    public static Command Create()
    {
        var api = new CoreApi();
        var app = new Argument<string?>("app") { Description = "Only this app", Arity = ArgumentArity.ZeroOrOne };
        var allDcs = new Option<bool>("--all-dcs")
        {
            Description = "Every datacenter of the datacenters file (docs/multi-dc.md), each through its own eru-core",
        };
        var cmd = new Command("ps", "List workloads: node, address, tags, live or why not") { app, allDcs };
        api.AddTo(cmd);
        LegacyEtcdOptions.AddTo(cmd);
        cmd.SetAction(async (pr, ct) =>
        {
            var request = new V1.ListWorkloadsRequest { App = pr.GetValue(app) ?? "" };
            var found = new List<(string? Datacenter, V1.Workload Workload)>();
            var code = pr.GetValue(allDcs)
                ? await CoreApi.RunEveryDatacenterAsync("ps", async (dc, c, t) =>
                {
                    found.AddRange((await c.ListWorkloadsAsync(request, cancellationToken: t)).Workloads.Select(w => ((string?)dc, w)));
                    return 0;
                }, ct)
                : await api.RunAsync(pr, "ps", async (c, t) =>
                {
                    found.AddRange((await c.ListWorkloadsAsync(request, cancellationToken: t)).Workloads.Select(w => ((string?)null, w)));
                    return 0;
                }, ct);
            if (code != 0 && found.Count == 0) return code;
            if (pr.GetValue(api.Json)) PrintJson(found);
            else Print(found, pr.GetValue(app), pr.GetValue(allDcs));
            return code;
        });
        return cmd;
    }

    /// <summary>The fields scripts and tests parse, as they were when ps read etcd itself.</summary>
    private static void PrintJson(IEnumerable<(string? Datacenter, V1.Workload Workload)> workloads)
    {
        var list = new JsonArray();
        foreach (var (dc, w) in workloads)
        {
            var addresses = new JsonObject();
            foreach (var (net, ip) in w.Networks) addresses[net] = ip;
            var addresses6 = new JsonObject();
            foreach (var (net, ip) in w.Networks6) addresses6[net] = ip;
            var item = new JsonObject
            {
                ["name"] = w.Name, ["id"] = w.Id, ["app"] = w.App, ["entrypoint"] = w.Entrypoint, ["ident"] = w.Ident, ["node"] = w.Node,
                ["image"] = w.Image, ["tags"] = new JsonArray([.. w.Tags.Select(t => JsonValue.Create(t))]), ["addresses"] = addresses,
                ["addresses6"] = addresses6, ["live"] = w.Live, ["state"] = w.Live ? "live" : w.Reason, ["created"] = w.CreatedAt,
            };
            if (dc is not null) item["datacenter"] = dc;
            list.Add(item);
        }
        Console.WriteLine(list.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    private static void Print(IReadOnlyCollection<(string? Datacenter, V1.Workload Workload)> workloads, string? app, bool allDcs)
    {
        var now = DateTimeOffset.UtcNow;
        var rows = workloads.Select(x => Row(x.Workload, now)).ToList();
        string[] header = ["NAME", "NODE", "ADDRESS", "TAGS", "STATE", "AGE"];
        if (allDcs)
        {
            header = ["DATACENTER", .. header];
            rows = [.. workloads.Zip(rows, (x, r) => (string[])[x.Datacenter ?? "", .. r])];
        }
        CliText.Table(header, rows);
        if (rows.Count == 0) Console.WriteLine(app is null ? "(no workloads)" : $"(no workloads of {app})");
    }

    private static string[] Row(V1.Workload w, DateTimeOffset now) =>
    [
        w.Name, w.Node, w.Networks.Values.FirstOrDefault() ?? w.Networks6.Values.FirstOrDefault() ?? "-", string.Join(",", w.Tags),
        w.Live ? "live" : w.Reason,
        DateTimeOffset.TryParse(w.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.None, out var created) ? Age(now - created) : "-",
    ];

    private static string Age(TimeSpan t) =>
        t.TotalDays >= 1 ? $"{(int)t.TotalDays}d"
        : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m"
        : $"{Math.Max(0, (int)t.TotalSeconds)}s";
}

/// <summary>
/// <c>--etcd</c> and <c>--prefix</c> of commands that used to read etcd themselves (ps, ssh-user): accepted and ignored
/// for one release, hidden, so that scripts keep working while they move to <c>--core</c>.
/// </summary>
internal static class LegacyEtcdOptions
{
    public static void AddTo(Command command, bool recursive = false)
    {
        command.Options.Add(new Option<string?>("--etcd") { Hidden = true, Recursive = recursive });
        command.Options.Add(new Option<string?>("--prefix") { Hidden = true, Recursive = recursive });
    }
}
