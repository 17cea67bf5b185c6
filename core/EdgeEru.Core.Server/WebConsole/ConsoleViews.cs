using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeEru.Registry.Snapshot;
using EdgeEru.RuleGraphView;

namespace EdgeEru.Core.Server.WebConsole;

/// <summary>Where the console's views read from: the audit logs (JSON lines) and eru-dns's zone.</summary>
public sealed record ConsoleSources(string? AuditLog, string? SshAuditLog, string DnsZone);

/// <summary>What the console shows beside the service's replies (pure: files and snapshots in, JSON-ready values out).</summary>
public static class ConsoleViews
{
    /// <summary>The methods that change an app's workloads: its deploy and replace history.</summary>
    private static readonly HashSet<string> Changes = new(StringComparer.Ordinal)
    {
        "Deploy", "Replace", "Realloc", "Remove", "Control", "Run", "CopyTo", "Build",
    };

    public const int MaxEntries = 200;

    /// <summary>
    /// The newest <see cref="MaxEntries"/> entries of Core's audit log that changed <paramref name="app"/>, newest first;
    /// refusals included (who tried what). A line that is not JSON is passed over (a crash can cut the last one).
    /// </summary>
    public static List<JsonObject> History(IEnumerable<string> lines, string app) =>
        Newest(lines, o => o["method"]?.GetValue<string>() is { } m && Changes.Contains(m)
            && o["apps"] is JsonArray apps && apps.Any(a => a?.GetValue<string>() == app));

    /// <summary>The SSH gateway's session events (start, end, refused; optionally of one app's workloads), newest first.</summary>
    public static List<JsonObject> SshSessions(IEnumerable<string> lines, string? app, RegistrySnapshot snapshot) =>
        Newest(lines, o => o["event"]?.GetValue<string>() is { } e && e.StartsWith("session_", StringComparison.Ordinal)
            && (app is null || o["app"]?.GetValue<string>() == app
                || (o["workload"]?.GetValue<string>() is { } id && snapshot.Workloads.TryGetValue(id, out var w) && w.Record?.App == app)
                || (o["target"]?.GetValue<string>() is { } t && (t == app || t.EndsWith("." + app, StringComparison.Ordinal)))));

    private static List<JsonObject> Newest(IEnumerable<string> lines, Func<JsonObject, bool> wanted)
    {
        var kept = new Queue<JsonObject>();
        foreach (var line in lines)
        {
            JsonObject? o;
            try
            {
                o = JsonNode.Parse(line) as JsonObject;
            }
            catch (JsonException)
            {
                continue;
            }
            if (o is null || !wanted(o)) continue;
            kept.Enqueue(o);
            if (kept.Count > MaxEntries) kept.Dequeue();
        }
        return [.. kept.Reverse()];
    }

    /// <summary>One name eru-dns answers for an app, what it answers with, and how many live instances are behind it.</summary>
    public sealed record DnsName(string Name, string Type, string What, int Live);

    /// <summary>
    /// The names eru-dns answers for <paramref name="app"/> in <paramref name="zone"/> (docs/dns.md): each service, its
    /// tags and idents, and SRV names per published port. A name with no live instance is listed with 0 (NXDOMAIN now).
    /// </summary>
    public static List<DnsName> DnsNames(RegistrySnapshot snapshot, string app, string zone)
    {
        zone = zone.Trim('.');
        var names = new SortedDictionary<string, DnsName>(StringComparer.Ordinal);
        void Add(string name, string type, string what, bool live)
        {
            var was = names.GetValueOrDefault(name);
            names[name] = new DnsName(name, type, what, (was?.Live ?? 0) + (live ? 1 : 0));
        }
        foreach (var w in snapshot.Workloads)
        {
            if (w.Record is not { Job: false } r || r.App != app) continue;
            var service = $"{r.Entrypoint}.{r.App}.{zone}";
            Add($"{r.App}.{zone}", "app", "no data (the app exists while it has a service)", false);
            Add(service, "A/AAAA", "every live instance", w.IsLive);
            foreach (var tag in r.Tags) Add($"{tag}.{service}", "A/AAAA", $"live instances tagged {tag}", w.IsLive);
            Add($"{r.Ident}.{service}", "A/AAAA", $"the instance {r.Name}", w.IsLive);
            foreach (var p in r.Ports)
                Add($"_{p.Name}._{p.Protocol}.{service}", "SRV", $"port {p.Port}/{p.Protocol} of live instances", w.IsLive);
        }
        return [.. names.Values];
    }

    /// <summary>
    /// The LB's domains as the rule graph renderer takes them (nodes with their labels), optionally only those with a
    /// backend that selects <paramref name="app"/>, and which apps each backend selects.
    /// </summary>
    public static List<object> LbDomains(RegistrySnapshot snapshot, string? app) =>
    [
        .. snapshot.LbDomains.Values.OrderBy(d => d.Name, StringComparer.Ordinal)
            .Where(d => app is null || d.Nodes.Values.Any(n => n.Select?.App == app || n.Fallback?.App == app))
            .Select(d => new
            {
                domain = d.Name,
                init = d.Init,
                nodes = d.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new
                {
                    id = n.Key, type = n.Value.Type, label = RuleGraphLabels.Label(n.Value), succ = n.Value.Succ, fail = n.Value.Fail,
                }),
                backends = d.Nodes.Where(n => n.Value.Select is not null).OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new
                {
                    node = n.Key, app = n.Value.Select!.App, entrypoint = n.Value.Select.Entrypoint,
                    tags = n.Value.Select.Tags ?? [],
                    live = snapshot.Live(n.Value.Select.App ?? "", n.Value.Select.Entrypoint ?? "").Count(v =>
                        (n.Value.Select.Tags ?? []).All(t => v.Record!.Tags.Contains(t))),
                }),
            }),
    ];

    /// <summary>The lines of a JSON-lines file another process appends to; none when it is not there (yet).</summary>
    public static IEnumerable<string> ReadLines(string path)
    {
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            yield break;
        }
        catch (DirectoryNotFoundException)
        {
            yield break;
        }
        using var reader = new StreamReader(file);
        while (reader.ReadLine() is { } line) if (line.Length > 0) yield return line;
    }
}
