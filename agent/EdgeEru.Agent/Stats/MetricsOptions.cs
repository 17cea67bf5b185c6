using EdgeEru.Agent.Logs;

namespace EdgeEru.Agent.Stats;

/// <summary>The "Metrics" section: how often containers are sampled, and an optional carbon (graphite plaintext) address.</summary>
public sealed class MetricsOptions
{
    public const string Section = "Metrics";

    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>host:port of a carbon receiver (plaintext protocol); none when empty.</summary>
    public string? Graphite { get; set; }

    /// <summary>First part of every graphite path: {prefix}.{node}.{app}.{entrypoint}.{ident}.{metric}.</summary>
    public string GraphitePrefix { get; set; } = "eru";

    public IReadOnlyList<string> Problems()
    {
        var e = new List<string>();
        if (Interval < TimeSpan.FromMilliseconds(100) || Interval > TimeSpan.FromHours(1))
            e.Add($"Metrics:Interval {Interval} must be between 00:00:00.1 and 01:00:00");
        if (!string.IsNullOrEmpty(Graphite) && LogSinkOptions.ParseAddress(Graphite) is null)
            e.Add($"Metrics:Graphite \"{Graphite}\" must be host:port");
        if (string.IsNullOrWhiteSpace(GraphitePrefix) || GraphitePrefix.Any(c => c is ' ' or '\n'))
            e.Add($"Metrics:GraphitePrefix \"{GraphitePrefix}\" must be a non-empty path without spaces");
        return e;
    }
}
