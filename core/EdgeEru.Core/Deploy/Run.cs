using Docker.DotNet;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>A one-off job: an app's container with another command, run to its end.</summary>
public sealed record RunSpec
{
    /// <summary>What to run: the app's entrypoint with the job's command (count 1; ports, health check and restart are dropped).</summary>
    public required DeploySpec Spec { get; init; }

    /// <summary>Killed when it runs longer (0: no limit).</summary>
    public TimeSpan Timeout { get; init; }

    /// <summary>Keep the exited container and its record (default: both are removed).</summary>
    public bool Keep { get; init; }
}

/// <summary>A piece of a job's output as the container wrote it.</summary>
public readonly record struct JobOutput(bool Stderr, ReadOnlyMemory<byte> Bytes);

/// <summary>How a job ended: its exit code (137 when killed), or why it never ran.</summary>
public sealed record JobResult(InstanceOutcome? Instance, long ExitCode, string? Error)
{
    public bool TimedOut { get; init; }
    public bool Removed { get; init; }
    public RefusalKind Refused { get; init; }
}

/// <summary>Run: schedule and record a job like an instance (never live: no DNS, no LB), stream its output, wait, remove.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Runs a job: placed like one instance (its resources count on the node while it runs), created and
    /// attached before it starts so no output is lost, then waited for. A timeout or cancellation (the
    /// caller went away, Ctrl-C) kills it. Its container, record and volumes are removed unless kept.
    /// </summary>
    public async Task<JobResult> RunAsync(RunSpec run, Func<JobOutput, Task> output, Func<InstanceOutcome, Task>? started = null,
        CancellationToken ct = default)
    {
        var spec = run.Spec with { Count = 1, Ports = [], Healthcheck = null, Restart = "no", Strategy = Strategy.Auto, PerNodeLimit = 0 };
        var problems = spec.Problems().ToList();
        if (spec.Command.Count == 0) problems.Add("a job needs a command");
        if (run.Timeout < TimeSpan.Zero) problems.Add("the timeout must not be negative");
        if (problems.Count > 0)
            return new JobResult(null, -1, "invalid job: " + string.Join("; ", problems)) { Refused = RefusalKind.Invalid };
        var (prepared, refused) = await PrepareAsync(spec, job: true, ct);
        if (refused is not null) return new JobResult(null, -1, refused.Message) { Refused = refused.Kind };
        var (candidates, usage, refusal) = await CandidatesAsync(spec, ct);
        if (refusal is not null) return new JobResult(null, -1, refusal.Message) { Refused = refusal.Kind };
        var placement = Scheduler.Place(usage, new PlacementRequest(spec.Resources, 1, Strategy.Auto));
        if (!placement.Ok) return new JobResult(null, -1, "no capacity: " + placement.Error) { Refused = RefusalKind.NoCapacity };
        var node = candidates[placement.PerNode.Single(p => p.Value > 0).Key];

        using var engine = engines(node.Endpoint);
        if (await ImageProblemAsync(engine, node, prepared!, ct) is { } problem) return new JobResult(null, -1, problem);
        var instance = await CreateInstanceAsync(engine, node, prepared!, ct);
        if (instance.Error is not null) return new JobResult(instance, -1, instance.Error);
        var id = instance.WorkloadId!;
        // A job dies with the Core that runs it: if this replica crashes, the reaper kills and removes it.
        var intent = await IntendAsync(Intent.Job, node.Name, id, ct: ct);
        if (started is not null) await started(instance);
        log.LogInformation("job {Name} of {App} on {Node}: {Command}", instance.Name, spec.App, node.Name, string.Join(' ', spec.Command));

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (run.Timeout > TimeSpan.Zero) limit.CancelAfter(run.Timeout);
        long exit;
        var timedOut = false;
        try
        {
            using var stream = await engine.AttachAsync(id, limit.Token);
            await engine.StartAsync(id, limit.Token);
            await YieldAsync("job-started", limit.Token);
            await CopyOutputAsync(stream, output, limit.Token);
            exit = await engine.WaitAsync(id, limit.Token);
        }
        catch (Exception) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // The timeout (a read cut short may surface as an I/O error rather than a cancellation).
            timedOut = true;
            await engine.KillAsync(id, ct: CancellationToken.None);
            exit = await engine.WaitAsync(id, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await EndAsync(engine, id, run.Keep, intent);
            return new JobResult(instance, -1, $"job {instance.Name}: {ex.Message}");
        }
        catch (OperationCanceledException)
        {
            // The caller went away (Ctrl-C, a dropped connection): the job dies with it.
            log.LogInformation("job {Name} cancelled: killing it", instance.Name);
            await EndAsync(engine, id, run.Keep, intent);
            throw;
        }
        var removed = await EndAsync(engine, id, run.Keep, intent);
        log.LogInformation("job {Name} exited {Code}{TimedOut}", instance.Name, exit, timedOut ? " (timed out)" : "");
        return new JobResult(instance, exit, timedOut ? $"timed out after {run.Timeout.TotalSeconds:0.#} s: killed" : null)
        {
            TimedOut = timedOut, Removed = removed,
        };
    }

    /// <summary>Relays the container's frames (stdout and stderr apart) until it closes its output.</summary>
    private static async Task CopyOutputAsync(MultiplexedStream stream, Func<JobOutput, Task> output, CancellationToken ct)
    {
        var buffer = new byte[32 * 1024];
        while (true)
        {
            var r = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct);
            if (r.EOF || r.Count == 0) return;
            await output(new JobOutput(r.Target == MultiplexedStream.TargetStream.StandardError, buffer.AsMemory(0, r.Count).ToArray()));
        }
    }

    /// <summary>Kills the job if it still runs, then removes it (container, record, volumes) unless kept; true when removed.</summary>
    private async Task<bool> EndAsync(Docker.DockerEngine engine, string id, bool keep, Intent? intent)
    {
        await engine.KillAsync(id, ct: CancellationToken.None);
        await DoneAsync(intent);
        if (keep) return false;
        var removed = await RemoveAsync([id], TimeSpan.Zero, null, hooks: false, CancellationToken.None);
        if (removed[0].Error is { } error) log.LogWarning("job {Id} ended but was not removed: {Error}", id, error);
        return removed[0].Error is null;
    }
}
