using EdgeEru.Registry.Model;

namespace EdgeEru.Agent.Health;

/// <summary>
/// The health verdict of one container run, from its check results: healthy after N consecutive
/// successes, unhealthy after M consecutive failures, failures ignored during the start grace.
/// Pure: the agent feeds it results and writes what it says.
/// </summary>
public sealed class HealthState(DateTimeOffset startedAt)
{
    public DateTimeOffset StartedAt { get; } = startedAt;
    public bool Healthy { get; private set; }
    public int Successes { get; private set; }
    public int Failures { get; private set; }

    /// <summary>Why not healthy (null when healthy).</summary>
    public string? Reason { get; private set; } = "not checked yet";

    public DateTimeOffset LastCheck { get; private set; } = DateTimeOffset.MinValue;

    public bool IsDue(HealthCheckSpec? spec, DateTimeOffset now) => now - LastCheck >= TimeSpan.FromMilliseconds(spec?.IntervalMs ?? 1000);

    public bool InGrace(HealthCheckSpec? spec, DateTimeOffset now) =>
        spec is { StartGraceMs: > 0 } g && now - StartedAt < TimeSpan.FromMilliseconds(g.StartGraceMs);

    /// <summary>Takes one check result (<paramref name="problem"/> null = success); returns the new verdict when it changed.</summary>
    public bool? Observe(string? problem, HealthCheckSpec? spec, DateTimeOffset now)
    {
        LastCheck = now;
        var was = Healthy;
        if (problem is null)
        {
            Failures = 0;
            Successes++;
            if (Successes >= Math.Max(1, spec?.HealthyAfter ?? 1)) Healthy = true;
            Reason = Healthy ? null : "starting";
        }
        else if (!InGrace(spec, now))
        {
            Successes = 0;
            Failures++;
            if (Failures >= Math.Max(1, spec?.UnhealthyAfter ?? 1)) Healthy = false;
            Reason = problem;
        }
        return Healthy == was ? null : Healthy;
    }
}
