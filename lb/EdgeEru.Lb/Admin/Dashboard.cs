using System.Reflection;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Routing;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.RuleGraphView;

namespace EdgeEru.Lb.Admin;

/// <summary>
/// The dashboard: a page (no data in it, so it needs no token) whose script reads <c>/api/dashboard</c>
/// with the admin token every second: each domain's graph with hit counts, and each backend's workloads
/// (live or not) with health, ejection, in-flight and request counts.
/// </summary>
internal static class Dashboard
{
    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("EdgeEru.Lb.Admin.dashboard.html")
            ?? throw new InvalidOperationException("dashboard.html is not embedded");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    });

    public static void MapPage(IEndpointRouteBuilder e)
    {
        e.MapGet("/", () => Results.Redirect("/dashboard"));
        e.MapGet("/dashboard", () => Results.Content(Page.Value, "text/html; charset=utf-8"));
        e.MapGet("/dashboard/rule-graph.js", () => Results.Content(RuleGraphLabels.Script, "text/javascript; charset=utf-8"));
    }

    /// <summary>The dashboard's data from the routes in force.</summary>
    public static object Model(Routes routes)
    {
        var snapshot = routes.Snapshot;
        return new
        {
            revision = snapshot.Revision,
            domains = routes.Graphs.OrderBy(g => g.Domain.Name, StringComparer.Ordinal).Select(g =>
            {
                var hits = g.Hits().ToDictionary(h => h.Id, h => h.Hits);
                return new
                {
                    domain = g.Domain.Name,
                    init = g.Domain.Init,
                    nodes = g.Domain.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new
                    {
                        id = n.Key,
                        type = n.Value.Type,
                        label = RuleGraphLabels.Label(n.Value),
                        succ = n.Value.Succ,
                        fail = n.Value.Fail,
                        hits = hits.GetValueOrDefault(n.Key),
                    }),
                    backends = g.Terminals.OfType<BackendTerminal>().Select(t => new
                    {
                        node = t.Id,
                        workloads = Workloads(t.Node, snapshot, routes.Destinations),
                    }),
                };
            }),
        };
    }

    /// <summary>Every workload a backend's selectors (main and fallback) name, live or not, and what the LB sees of it.</summary>
    private static List<object> Workloads(LbNode node, RegistrySnapshot snapshot, Dictionary<string, Destination> destinations)
    {
        var select = node.Select!;
        var byId = destinations.Values.GroupBy(d => d.WorkloadId).ToDictionary(g => g.Key, g => g.First());
        var list = new List<object>();
        foreach (var v in snapshot.Workloads)
        {
            var r = v.Record;
            if (r is null) continue;
            var main = r.App == select.App && r.Entrypoint == select.Entrypoint && (select.Tags ?? []).All(r.Tags.Contains);
            var fallback = node.Fallback is { } f && r.App == (f.App ?? select.App) && r.Entrypoint == (f.Entrypoint ?? select.Entrypoint)
                && (f.Tags ?? []).All(r.Tags.Contains);
            if (!main && !fallback) continue;
            byId.TryGetValue(v.Id, out var d);
            var state = !v.IsLive
                ? v.Status is null ? "no status" : !v.Status.Running ? "not running" : !v.Status.Healthy ? "unhealthy" : "node down"
                : d is { FailsCheck: true } ? "failing check" : d is { IsEjected: true } ? "ejected" : "healthy";
            list.Add(new
            {
                workload = v.Id,
                name = r.Name,
                tags = r.Tags,
                address = d?.Address ?? v.Addresses().Select(a => a.Address).FirstOrDefault() ?? v.FirstAddress6(),
                port = d?.Port,
                state,
                reason = v.IsLive ? null : v.Status?.Reason,
                fallback = !main,
                in_flight = d?.InFlight ?? 0,
                requests = d?.Requests ?? 0,
            });
        }
        return list;
    }
}
