using Prometheus;

namespace EdgeEru.Lb.Routing;

/// <summary>
/// Per graph node and per backend destination metrics, read from the routes' own counters when
/// /metrics is scraped (nothing extra on the request path). Series of nodes and workloads that went
/// away are removed.
/// </summary>
internal static class RouteMetrics
{
    private static readonly Counter NodeHits = Metrics.CreateCounter("eru_lb_node_hits_total",
        "Requests that reached a graph node (filters and terminals), since its graph was compiled.",
        new CounterConfiguration { LabelNames = ["domain", "node"] });
    private static readonly Counter BackendRequests = Metrics.CreateCounter("eru_lb_backend_requests_total",
        "Requests sent to a backend's workload.",
        new CounterConfiguration { LabelNames = ["domain", "node", "workload", "address"] });
    private static readonly Gauge BackendInFlight = Metrics.CreateGauge("eru_lb_backend_in_flight",
        "Requests in flight to a backend's workload.",
        new GaugeConfiguration { LabelNames = ["domain", "node", "workload", "address"] });
    private static readonly Gauge BackendOut = Metrics.CreateGauge("eru_lb_backend_out",
        "1 while a workload is ejected (passive) or failing its active check.",
        new GaugeConfiguration { LabelNames = ["domain", "node", "workload", "address"] });

    private static readonly object Gate = new();
    private static HashSet<string[]> _nodeLabels = new(LabelsComparer.Instance);
    private static HashSet<string[]> _backendLabels = new(LabelsComparer.Instance);
    private static int _registered;

    /// <summary>Reports <paramref name="routes"/> until <see cref="Unregister"/> (one per process, except in tests).</summary>
    public static void Register(RoutesHolder routes)
    {
        Holders.TryAdd(routes, 0);
        if (Interlocked.Exchange(ref _registered, 1) == 0) Metrics.DefaultRegistry.AddBeforeCollectCallback(Collect);
    }

    public static void Unregister(RoutesHolder routes) => Holders.TryRemove(routes, out _);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<RoutesHolder, byte> Holders = new();

    private static void Collect()
    {
        lock (Gate)
        {
            var nodes = new HashSet<string[]>(LabelsComparer.Instance);
            var backends = new HashSet<string[]>(LabelsComparer.Instance);
            foreach (var routes in Holders.Keys.Select(h => h.Current))
            foreach (var g in routes.Graphs)
            {
                foreach (var (id, hits) in g.Hits())
                {
                    string[] l = [g.Domain.Name, id];
                    nodes.Add(l);
                    NodeHits.WithLabels(l).IncTo(hits);
                }
                foreach (var t in g.Terminals.OfType<BackendTerminal>())
                {
                    var pools = routes.Pools(g, t);
                    var all = pools.Main.Destinations.Concat(pools.Groups.SelectMany(x => x.Pool.Destinations))
                        .Concat(pools.Fallback?.Destinations ?? []).Concat(pools.Datacenters.SelectMany(x => x.Pool.Destinations))
                        .Distinct();
                    foreach (var d in all)
                    {
                        string[] l = [g.Domain.Name, t.Id, d.WorkloadId, d.Authority];
                        backends.Add(l);
                        BackendRequests.WithLabels(l).IncTo(d.Requests);
                        BackendInFlight.WithLabels(l).Set(d.InFlight);
                        BackendOut.WithLabels(l).Set(d.IsOut ? 1 : 0);
                    }
                }
            }
            foreach (var gone in _nodeLabels.Except(nodes, LabelsComparer.Instance)) NodeHits.RemoveLabelled(gone);
            foreach (var gone in _backendLabels.Except(backends, LabelsComparer.Instance))
            {
                BackendRequests.RemoveLabelled(gone);
                BackendInFlight.RemoveLabelled(gone);
                BackendOut.RemoveLabelled(gone);
            }
            _nodeLabels = nodes;
            _backendLabels = backends;
        }
    }

    private sealed class LabelsComparer : IEqualityComparer<string[]>
    {
        public static readonly LabelsComparer Instance = new();
        public bool Equals(string[]? x, string[]? y) => x is not null && y is not null && x.AsSpan().SequenceEqual(y);
        public int GetHashCode(string[] obj)
        {
            var h = new HashCode();
            foreach (var s in obj) h.Add(s);
            return h.ToHashCode();
        }
    }
}
