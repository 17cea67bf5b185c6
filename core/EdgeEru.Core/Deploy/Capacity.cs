using EdgeEru.Core.Scheduling;

namespace EdgeEru.Core.Deploy;

/// <summary>Capacity: a dry run of the plan, creating nothing.</summary>
public sealed partial class Deployer
{
    /// <summary>A dry run: how many instances of <paramref name="spec"/> fit on each candidate node.</summary>
    public async Task<(IReadOnlyList<NodeFit> Nodes, Refusal? Refusal)> CapacityAsync(DeploySpec spec, CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (problems.Count > 0) return ([], new Refusal(RefusalKind.Invalid, "invalid deploy spec: " + string.Join("; ", problems)));
        var (_, usage, refusal) = await CandidatesAsync(spec, ct);
        if (refusal is not null) return ([], refusal);
        return (usage.Select(n =>
        {
            var fit = Scheduler.Capacity(n, spec.Resources);
            if (spec.PerNodeLimit > 0) fit = Math.Min(fit, Math.Max(0, spec.PerNodeLimit - n.Existing));
            return new NodeFit(n.Name, fit, n.Existing,
                fit == 0 ? Scheduler.Reason(n, new PlacementRequest(spec.Resources, 1, spec.Strategy, spec.PerNodeLimit)) : null);
        }).OrderBy(f => f.Node, StringComparer.Ordinal).ToList(), null);
    }
}
