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
        var cmd = new Command("ps", "List workloads: node, address, tags, live or why not") { app };
        api.AddTo(cmd);
        LegacyEtcdOptions.AddTo(cmd);
        cmd.SetAction((pr, ct) => api.RunAsync(pr, "ps", async (c, t) =>
        {
            var reply = await c.ListWorkloadsAsync(new V1.ListWorkloadsRequest { App = pr.GetValue(app) ?? "" }, cancellationToken: t);
            if (pr.GetValue(api.Json)) PrintJson(reply.Workloads);
            else Print(reply.Workloads, pr.GetValue(app));
            return 0;
        }, ct));
        return cmd;
    }

    /// <summary>The fields scripts and tests parse, as they were when ps read etcd itself.</summary>
    private static void PrintJson(IEnumerable<V1.Workload> workloads)
    {
        var list = new JsonArray();
        foreach (var w in workloads)
        {
            var addresses = new JsonObject();
            foreach (var (net, ip) in w.Networks) addresses[net] = ip;
            var addresses6 = new JsonObject();
            foreach (var (net, ip) in w.Networks6) addresses6[net] = ip;
            list.Add(new JsonObject
            {
                ["name"] = w.Name, ["id"] = w.Id, ["app"] = w.App, ["entrypoint"] = w.Entrypoint, ["ident"] = w.Ident, ["node"] = w.Node,
                ["image"] = w.Image, ["tags"] = new JsonArray([.. w.Tags.Select(t => JsonValue.Create(t))]), ["addresses"] = addresses,
                ["addresses6"] = addresses6, ["live"] = w.Live, ["state"] = w.Live ? "live" : w.Reason, ["created"] = w.CreatedAt,
            });
        }
        Console.WriteLine(list.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    private static void Print(IReadOnlyCollection<V1.Workload> workloads, string? app)
    {
        var now = DateTimeOffset.UtcNow;
        var rows = workloads.Select(w => new[]
        {
            w.Name, w.Node, w.Networks.Values.FirstOrDefault() ?? w.Networks6.Values.FirstOrDefault() ?? "-", string.Join(",", w.Tags),
            w.Live ? "live" : w.Reason,
            DateTimeOffset.TryParse(w.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.None, out var created)
                ? Age(now - created) : "-",
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
