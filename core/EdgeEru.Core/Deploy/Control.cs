using EdgeEru.Registry;

namespace EdgeEru.Core.Deploy;

/// <summary>Start, stop, restart: the container changes, its record and allocation stay.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Starts, stops or restarts workloads' containers; their records and allocations stay. With
    /// <paramref name="hooks"/>, a stop runs the before_stop hooks first and a start runs after_start after.
    /// </summary>
    public async Task<IReadOnlyList<InstanceOutcome>> ControlAsync(
        IEnumerable<string> workloadIds, ControlAction action, TimeSpan stopTimeout,
        Action<InstanceOutcome>? progress = null, bool hooks = true, CancellationToken ct = default)
    {
        var outcomes = new List<InstanceOutcome>();
        foreach (var id in workloadIds)
        {
            var record = await store.GetAsync(Kinds.Workloads, id, ct);
            InstanceOutcome outcome;
            if (record is null) outcome = new InstanceOutcome("", id, null, $"no workload {id}");
            else if (await store.GetAsync(Kinds.Nodes, record.Value.Node, ct) is not { } node)
                outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, $"node {record.Value.Node} is gone");
            else
            {
                try
                {
                    using var engine = engines(node.Value.Endpoint);
                    var w = record.Value;
                    if (hooks && action is ControlAction.Stop or ControlAction.Restart) await BeforeStopAsync(engine, w, ct);
                    switch (action)
                    {
                        case ControlAction.Start: await engine.StartAsync(id, ct); break;
                        case ControlAction.Stop: await engine.StopAsync(id, stopTimeout, ct); break;
                        case ControlAction.Restart: await engine.RestartAsync(id, stopTimeout, ct); break;
                        default: throw new ArgumentOutOfRangeException(nameof(action), action, "start, stop or restart");
                    }
                    if (hooks && action is ControlAction.Start or ControlAction.Restart)
                        await RunHooksAsync(engine, id, "after_start", w.AfterStart ?? [], ct);
                    outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, null);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    outcome = new InstanceOutcome(record.Value.Node, id, record.Value.Name, ex.Message);
                }
            }
            outcomes.Add(outcome);
            progress?.Invoke(outcome);
        }
        return outcomes;
    }
}

public enum ControlAction
{
    Start,
    Stop,
    Restart,
}
