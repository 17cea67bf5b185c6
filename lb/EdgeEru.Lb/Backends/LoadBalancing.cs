namespace EdgeEru.Lb.Backends;

/// <summary>
/// How a destination is picked among a pool's (a backend's <c>policy</c> option). One instance per policy,
/// chosen when the graph is compiled; asked only when a pool has two destinations or more.
/// </summary>
internal interface ILoadBalancingPolicy
{
    /// <summary>Picks one of the pool's destinations; one that is out (ejected, failing its check) loses while another is in.</summary>
    Destination Pick(Pool pool);
}

internal static class LoadBalancingPolicies
{
    public static readonly ILoadBalancingPolicy PowerOfTwoChoices = new PowerOfTwoChoices();
    public static readonly ILoadBalancingPolicy RoundRobin = new RoundRobin();
    public static readonly ILoadBalancingPolicy LeastRequests = new LeastRequests();

    /// <summary>The policy an option names (validated by the registry: p2c, round_robin, least_requests; null: p2c).</summary>
    public static ILoadBalancingPolicy Named(string? name) => name switch
    {
        "round_robin" => RoundRobin,
        "least_requests" => LeastRequests,
        _ => PowerOfTwoChoices,
    };
}

/// <summary>Two at random, the less busy wins (the default: near least-requests without a scan, and no herd on one).</summary>
internal sealed class PowerOfTwoChoices : ILoadBalancingPolicy
{
    public Destination Pick(Pool pool)
    {
        var d = pool.Destinations;
        var a = d[Random.Shared.Next(d.Length)];
        var b = d[Random.Shared.Next(d.Length)];
        if (a.IsOut != b.IsOut) return a.IsOut ? b : a;
        if (a.IsOut) // both out: look for any that is in before giving up on the pair
            foreach (var c in d)
                if (!c.IsOut) return c;
        return a.InFlight <= b.InFlight ? a : b;
    }
}

/// <summary>Each in turn (the pool keeps the turn).</summary>
internal sealed class RoundRobin : ILoadBalancingPolicy
{
    public Destination Pick(Pool pool)
    {
        var d = pool.Destinations;
        for (var tries = 0; tries < d.Length; tries++)
        {
            var c = d[(int)(pool.NextTurn() % (uint)d.Length)];
            if (!c.IsOut) return c;
        }
        return d[0];
    }
}

/// <summary>The one with the fewest requests in flight.</summary>
internal sealed class LeastRequests : ILoadBalancingPolicy
{
    public Destination Pick(Pool pool)
    {
        var d = pool.Destinations;
        Destination? best = null;
        foreach (var c in d)
            if (!c.IsOut && (best is null || c.InFlight < best.InFlight)) best = c;
        return best ?? d[0];
    }
}
