using System.CommandLine;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeEru.Cli;

/// <summary><c>eru ps [APP]</c>: workloads as the registry sees them, with whether each is live and why not.</summary>
internal static class PsCommand
{
    public static Command Create()
    {
        var app = new Argument<string?>("app") { Description = "Only this app", Arity = ArgumentArity.ZeroOrOne };
        var etcd = new Option<string>("--etcd") { Description = "etcd client URL (https: client certificate from $ERU_ETCD_CERT, $ERU_ETCD_KEY, CA from $ERU_ETCD_CA)", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_ETCD") ?? "http://127.0.0.1:23790" };
        var prefix = new Option<string>("--prefix") { DefaultValueFactory = _ => RegistryKeys.DefaultPrefix };
        var cmd = new Command("ps", "List workloads: node, address, tags, live or why not") { app, etcd, prefix };
        cmd.SetAction(async (pr, ct) =>
        {
            RegistryOptions options;
            try
            {
                options = CliText.Etcd(pr.GetValue(etcd)!, pr.GetValue(prefix)!);
                options.ParseEndpoints();
                _ = new RegistryKeys(options.Prefix);
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("eru ps: " + ex.Message);
                return 2;
            }
            using var conn = new EtcdConnection(options);
            await using var watcher = new RegistryWatcher(conn, NullLogger<RegistryWatcher>.Instance);
            watcher.Start();
            try
            {
                await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(10), ct);
            }
            catch (TimeoutException)
            {
                await Console.Error.WriteLineAsync($"eru ps: no answer from etcd at {options.Endpoints}");
                return 1;
            }
            Print(watcher.Current, pr.GetValue(app));
            return 0;
        });
        return cmd;
    }

    private static void Print(RegistrySnapshot s, string? app)
    {
        var rows = s.Workloads.Where(w => w.Record is not null && (app is null || w.Record.App == app))
            .OrderBy(w => w.Record!.App, StringComparer.Ordinal).ThenBy(w => w.Record!.Entrypoint, StringComparer.Ordinal).ThenBy(w => w.Record!.Name, StringComparer.Ordinal)
            .Select(w => new[]
            {
                w.Record!.Name, w.Record.Node, w.Addresses().FirstOrDefault().Address ?? "-", string.Join(",", w.Record.Tags),
                s.WhyNotLive(w) ?? "live", Age(DateTimeOffset.UtcNow - w.Record.CreatedAt),
            }).ToList();
        CliText.Table(["NAME", "NODE", "ADDRESS", "TAGS", "STATE", "AGE"], rows);
        if (rows.Count == 0) Console.WriteLine(app is null ? "(no workloads)" : $"(no workloads of {app})");
    }

    private static string Age(TimeSpan t) => t.TotalDays >= 1 ? $"{(int)t.TotalDays}d" : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m" : $"{Math.Max(0, (int)t.TotalSeconds)}s";
}
