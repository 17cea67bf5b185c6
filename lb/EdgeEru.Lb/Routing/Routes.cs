using EdgeEru.Lb.Backends;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Lb.Routing;

/// <summary>
/// Everything the data plane needs from one snapshot: compiled graphs by host and the live pools of
/// every backend. Graphs are recompiled only when their domain changed; pools are rebuilt when
/// workloads change (a destination-only update), keeping each destination's counters.
/// </summary>
internal sealed class Routes
{
    private readonly Dictionary<string, RuleGraph> _exact;
    private readonly (string Suffix, RuleGraph Graph)[] _wildcards;
    private readonly Dictionary<(RuleGraph, int), BackendPools> _pools;

    private Routes(RegistrySnapshot snapshot, Dictionary<string, RuleGraph> exact, (string, RuleGraph)[] wildcards,
        Dictionary<(RuleGraph, int), BackendPools> pools, Dictionary<string, Destination> destinations,
        (Destination, Registry.Model.LbActiveCheck)[] checks)
    {
        Checks = checks;
        Snapshot = snapshot;
        _exact = exact;
        _wildcards = wildcards;
        _pools = pools;
        Destinations = destinations;
    }

    public static readonly Routes Empty = new(RegistrySnapshot.Empty, [], [], [], [], []);

    /// <summary>Destinations of backends with an active health check, and their check (the first backend's, if several).</summary>
    public (Destination Destination, Registry.Model.LbActiveCheck Check)[] Checks { get; }

    public RegistrySnapshot Snapshot { get; }
    public Dictionary<string, Destination> Destinations { get; }
    public IEnumerable<RuleGraph> Graphs => _exact.Values.Concat(_wildcards.Select(w => w.Graph));

    /// <summary>The graph for a Host header: exact first, then the longest matching wildcard.</summary>
    public RuleGraph? Find(string host)
    {
        if (_exact.TryGetValue(host, out var g)) return g;
        foreach (var (suffix, graph) in _wildcards)
            if (host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && host.Length > suffix.Length) return graph;
        return null;
    }

    public BackendPools Pools(RuleGraph graph, BackendTerminal terminal) => _pools[(graph, terminal.Index)];

    /// <summary>Other datacenters' snapshots these routes were built with (selectors with <c>datacenters</c> use them).</summary>
    public IReadOnlyList<Registry.Watch.DatacenterSnapshot> Remotes { get; private init; } = [];

    public static Routes Build(RegistrySnapshot snapshot, Routes previous, Action<string, Exception> onBadGraph,
        IReadOnlyList<Registry.Watch.DatacenterSnapshot>? remotes = null)
    {
        var graphs = new Dictionary<string, RuleGraph>(StringComparer.OrdinalIgnoreCase);
        var before = previous.Graphs.ToDictionary(g => g.Domain.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, domain) in snapshot.LbDomains)
        {
            if (before.TryGetValue(name, out var old) && ReferenceEquals(old.Domain, domain))
            {
                graphs[name] = old; // unchanged: keep the compiled graph and its hit counts
                continue;
            }
            try
            {
                graphs[name] = new RuleGraph(domain);
            }
            catch (ArgumentException ex) // refused by validation, or a regex that does not compile
            {
                if (old is not null) graphs[name] = old; // keep the last good graph
                onBadGraph(name, ex);
            }
        }
        var exact = graphs.Where(g => !g.Key.StartsWith("*.", StringComparison.Ordinal)).ToDictionary(StringComparer.OrdinalIgnoreCase);
        var wildcards = graphs.Where(g => g.Key.StartsWith("*.", StringComparison.Ordinal))
            .Select(g => (g.Key[1..], g.Value)).OrderByDescending(w => w.Item1.Length).ToArray();

        var used = new Dictionary<string, Destination>(StringComparer.Ordinal);
        var pools = new Dictionary<(RuleGraph, int), BackendPools>();
        var checks = new Dictionary<Destination, Registry.Model.LbActiveCheck>();
        foreach (var graph in graphs.Values)
            foreach (var t in graph.Terminals.OfType<BackendTerminal>())
            {
                var p = pools[(graph, t.Index)] = BackendPools.Build(t.Node, snapshot, previous.Destinations, used, remotes);
                if (t.Node.Options?.HealthCheck is not { } check) continue;
                foreach (var d in p.Main.Destinations.Concat(p.Groups.SelectMany(g => g.Pool.Destinations))
                    .Concat(p.Fallback?.Destinations ?? []).Concat(p.Datacenters.SelectMany(x => x.Pool.Destinations)))
                    checks.TryAdd(d, check);
            }
        return new Routes(snapshot, exact, wildcards, pools, used, [.. checks.Select(c => (c.Key, c.Value))]) { Remotes = remotes ?? [] };
    }
}
