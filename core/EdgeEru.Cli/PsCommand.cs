using System.CommandLine;
using System.Text.Json.Nodes;
using EdgeEru.Registry;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Cli;

/// <summary><c>eru ps [APP]</c>: workloads as the registry sees them, with whether each is live and why not.</summary>
internal static class PsCommand
{
    public static Command Create()
    {
        var app = new Argument<string?>("app") { Description = "Only this app", Arity = ArgumentArity.ZeroOrOne };
        var etcd = new Option<string>("--etcd")
        {
            Description = "etcd client URL (https: client certificate from $ERU_ETCD_CERT, $ERU_ETCD_KEY, CA from $ERU_ETCD_CA)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_ETCD") ?? "http://127.0.0.1:23790",
        };
        var prefix = new Option<string>("--prefix") { DefaultValueFactory = _ => RegistryKeys.DefaultPrefix };
        var json = new Option<bool>("--json") { Description = "One JSON array for scripts" };
        var cmd = new Command("ps", "List workloads: node, address, tags, live or why not") { app, etcd, prefix, json };
        cmd.SetAction(async (pr, ct) =>
        {
            var (view, code) = await RegistryView.OpenAsync("ps", pr.GetValue(etcd)!, pr.GetValue(prefix)!, Console.Error, ct);
            if (view is null) return code;
            await using var owned = view;
            var watcher = view.Watcher;
            if (pr.GetValue(json)) PrintJson(watcher.Current, pr.GetValue(app));
            else Print(watcher.Current, pr.GetValue(app));
            return 0;
        });
        return cmd;
    }

    private static IEnumerable<WorkloadView> Rows(RegistrySnapshot s, string? app) =>
        s.Workloads.Where(w => w.Record is not null && (app is null || w.Record.App == app))
            .OrderBy(w => w.Record!.App, StringComparer.Ordinal)
            .ThenBy(w => w.Record!.Entrypoint, StringComparer.Ordinal)
            .ThenBy(w => w.Record!.Name, StringComparer.Ordinal);

    private static void PrintJson(RegistrySnapshot s, string? app)
    {
        var list = new JsonArray();
        foreach (var w in Rows(s, app))
        {
            var r = w.Record!;
            var addresses = new JsonObject();
            foreach (var (net, ip) in w.Addresses()) addresses[net] = ip;
            var addresses6 = new JsonObject();
            foreach (var (net, ip) in w.Addresses6()) addresses6[net] = ip;
            list.Add(new JsonObject
            {
                ["name"] = r.Name, ["id"] = r.Id, ["app"] = r.App, ["entrypoint"] = r.Entrypoint, ["ident"] = r.Ident, ["node"] = r.Node,
                ["image"] = r.Image, ["tags"] = new JsonArray([.. r.Tags.Select(t => JsonValue.Create(t))]), ["addresses"] = addresses,
                ["addresses6"] = addresses6,
                ["live"] = s.WhyNotLive(w) is null, ["state"] = s.WhyNotLive(w) ?? "live", ["created"] = r.CreatedAt.ToString("O"),
            });
        }
        Console.WriteLine(list.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    private static void Print(RegistrySnapshot s, string? app)
    {
        var rows = Rows(s, app)
            .Select(w => new[]
            {
                w.Record!.Name, w.Record.Node, w.Addresses().FirstOrDefault().Address ?? w.FirstAddress6() ?? "-",
                string.Join(",", w.Record.Tags),
                s.WhyNotLive(w) ?? "live", Age(DateTimeOffset.UtcNow - w.Record.CreatedAt),
            }).ToList();
        CliText.Table(["NAME", "NODE", "ADDRESS", "TAGS", "STATE", "AGE"], rows);
        if (rows.Count == 0) Console.WriteLine(app is null ? "(no workloads)" : $"(no workloads of {app})");
    }

    private static string Age(TimeSpan t) =>
        t.TotalDays >= 1 ? $"{(int)t.TotalDays}d"
        : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m"
        : $"{Math.Max(0, (int)t.TotalSeconds)}s";
}
