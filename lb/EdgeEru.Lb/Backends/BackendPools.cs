using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;

namespace EdgeEru.Lb.Backends;

/// <summary>The live destinations of one selector (a backend, one of its groups, or its fallback).</summary>
internal sealed class Pool(Destination[] destinations)
{
    private int _turn;

    public Destination[] Destinations { get; } = destinations;

    public bool IsEmpty => Destinations.Length == 0;

    /// <summary>A destination by <paramref name="policy"/>; null when the pool is empty.</summary>
    public Destination? Pick(ILoadBalancingPolicy policy) => Destinations.Length switch
    {
        0 => null,
        1 => Destinations[0],
        _ => policy.Pick(this),
    };

    /// <summary>The next turn of this pool (round robin).</summary>
    public uint NextTurn() => (uint)Interlocked.Increment(ref _turn);

    /// <summary>Whether a destination is in (neither ejected nor failing its check): the pool can serve now.</summary>
    public bool CanServe()
    {
        foreach (var d in Destinations)
            if (!d.IsOut) return true;
        return false;
    }
}

/// <summary>
/// A backend terminal's pools: the main selection (or weighted groups) and the fallback; with a selector's
/// <c>datacenters</c>, the main selection in each datacenter, in failover order (<see cref="Datacenters"/>).
/// </summary>
internal sealed class BackendPools(Pool main, (int Weight, Pool Pool)[] groups, Pool? fallback,
    (string Datacenter, Pool Pool)[]? datacenters = null)
{
    public Pool Main { get; } = main;
    public (int Weight, Pool Pool)[] Groups { get; } = groups;
    public Pool? Fallback { get; } = fallback;

    /// <summary>
    /// The selection in each datacenter the selector lists, in failover order ("local" is <see cref="Main"/>); empty
    /// without <c>datacenters</c> (the local one only).
    /// </summary>
    public (string Datacenter, Pool Pool)[] Datacenters { get; } = datacenters ?? [];

    /// <summary>
    /// The pool for one request: a weighted group (if any), else the main one; the fallback when that is empty. Across
    /// datacenters: the first one in order whose pool can serve (a live destination not ejected), the local one's
    /// fallback before leaving it; none can: as if local only.
    /// </summary>
    public Pool Choose()
    {
        if (Datacenters.Length == 0) return ChooseLocal();
        Pool? local = null; // chosen once: a second weighted roll would be work done twice
        foreach (var (_, pool) in Datacenters)
        {
            var candidate = ReferenceEquals(pool, Main) ? local ??= ChooseLocal() : pool;
            if (candidate.CanServe()) return candidate;
        }
        return local ?? ChooseLocal();
    }

    private Pool ChooseLocal()
    {
        var pool = Main;
        if (Groups.Length > 0)
        {
            var total = 0;
            foreach (var g in Groups) total += g.Weight;
            var roll = Random.Shared.Next(total);
            foreach (var g in Groups)
            {
                if (roll < g.Weight)
                {
                    pool = g.Pool;
                    break;
                }
                roll -= g.Weight;
            }
        }
        return pool.IsEmpty && Fallback is not null ? Fallback : pool;
    }

    /// <summary>The destination an affinity cookie names, if it is still in one of this backend's pools and not ejected.</summary>
    public Destination? Find(string affinityKey)
    {
        foreach (var d in Main.Destinations)
            if (d.AffinityKey == affinityKey) return d.IsOut ? null : d;
        foreach (var g in Groups)
            foreach (var d in g.Pool.Destinations)
                if (d.AffinityKey == affinityKey) return d.IsOut ? null : d;
        if (Fallback is not null)
            foreach (var d in Fallback.Destinations)
                if (d.AffinityKey == affinityKey) return d.IsOut ? null : d;
        foreach (var (_, pool) in Datacenters)
            foreach (var d in pool.Destinations)
                if (d.AffinityKey == affinityKey) return d.IsOut ? null : d;
        return null;
    }

    /// <summary>
    /// Builds the pools of a backend node from the live workloads of a snapshot and, for a selector that lists
    /// datacenters, of the other datacenters' snapshots (<paramref name="remotes"/>, in the balancer's failover order).
    /// </summary>
    public static BackendPools Build(LbNode node, RegistrySnapshot snapshot, Dictionary<string, Destination> known,
        Dictionary<string, Destination> used, IReadOnlyList<DatacenterSnapshot>? remotes = null)
    {
        var select = node.Select!;
        Pool PoolOf(string[]? extraTags, Dictionary<string, string>? extraLabels, LbSelector? over = null,
            RegistrySnapshot? from = null)
        {
            var registry = from ?? snapshot;
            var app = over?.App ?? select.App!;
            var entrypoint = over?.Entrypoint ?? select.Entrypoint!;
            var portName = over?.Port ?? select.Port!;
            var tags = (over is null ? select.Tags ?? [] : over.Tags ?? []).Concat(extraTags ?? []).ToArray();
            var labels = (over is null ? select.Labels : over.Labels) ?? [];
            var family = over?.Family ?? select.Family;
            var list = new List<Destination>();
            foreach (var v in registry.Live(app, entrypoint))
            {
                var r = v.Record!;
                if (!tags.All(r.Tags.Contains)) continue;
                if (!labels.All(l => r.Labels.TryGetValue(l.Key, out var x) && x == l.Value)) continue;
                if (extraLabels is not null && !extraLabels.All(l => r.Labels.TryGetValue(l.Key, out var x) && x == l.Value)) continue;
                var port = r.Ports.FirstOrDefault(p => p.Name == portName);
                if (port is null || AddressOf(v, family) is not { } address) continue;
                var key = Destination.Key(v.Id, address, port.Port);
                if (!known.TryGetValue(key, out var d)) d = new Destination(v.Id, address, port.Port);
                used[key] = d;
                list.Add(d);
            }
            return new Pool([.. list]);
        }
        var main = PoolOf(null, null);
        var groups = (node.Groups ?? []).Select(g => (g.Weight, PoolOf(g.Tags, g.Labels))).ToArray();
        var fallback = node.Fallback is null ? null : PoolOf(null, null, node.Fallback);
        if (select.Datacenters is not { Length: > 0 } order) return new BackendPools(main, groups, fallback);
        remotes ??= [];
        var tiers = new List<(string, Pool)>();
        foreach (var entry in order)
        {
            if (entry == LbSelector.LocalDatacenter || entry == snapshot.Datacenter) tiers.Add((LbSelector.LocalDatacenter, main));
            else if (entry == LbSelector.AnyDatacenter)
                tiers.AddRange(remotes.Where(r => !order.Contains(r.Name) && r.Name != snapshot.Datacenter)
                    .Select(r => (r.Name, PoolOf(null, null, from: r.Snapshot))));
            else
                tiers.Add((entry, remotes.FirstOrDefault(r => r.Name == entry) is { } r
                    ? PoolOf(null, null, from: r.Snapshot)
                    : new Pool([]))); // a datacenter this balancer does not follow: nothing there (explain shows it)
        }
        return new BackendPools(main, groups, fallback, [.. tiers]);
    }

    /// <summary>
    /// The address a selector's <paramref name="family"/> picks (docs/registry.md, LB domain): "ipv4" and "ipv6" that
    /// family only, "any" (null) the IPv4 address when there is one, else the IPv6 one; null when the workload has none.
    /// </summary>
    internal static string? AddressOf(WorkloadView v, string? family)
    {
        // Writers before addresses6 may have put an IPv6 address in the addresses map: its text says which family it is.
        string? v4 = null, v6 = null;
        foreach (var (_, ip) in v.Addresses())
        {
            if (!ip.Contains(':', StringComparison.Ordinal)) v4 ??= ip;
            else v6 ??= ip;
        }
        v6 = v.FirstAddress6() ?? v6;
        return family switch
        {
            "ipv4" => v4,
            "ipv6" => v6,
            _ => v4 ?? v6,
        };
    }
}
