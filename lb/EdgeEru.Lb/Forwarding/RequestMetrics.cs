using System.Diagnostics;
using System.Runtime.CompilerServices;
using EdgeEru.Lb.Routing;
using Prometheus;

namespace EdgeEru.Lb.Forwarding;

/// <summary>The per-request metrics, counted the same whichever front (Kestrel or the HTTP/1.1 fast path) answered.</summary>
internal static class RequestMetrics
{
    private static readonly Counter Requests = Metrics.CreateCounter("eru_lb_requests_total",
        "Requests by domain, terminal node and status class.",
        new CounterConfiguration { LabelNames = ["domain", "node", "code"] });
    private static readonly Histogram Duration = Metrics.CreateHistogram("eru_lb_request_duration_seconds",
        "Time to answer a request, by domain.",
        new HistogramConfiguration { LabelNames = ["domain"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
    private static readonly string[] Classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];

    // Label children are found by the terminal and graph objects (reference lookups, not label strings),
    // and go away with a replaced graph.
    private static readonly ConditionalWeakTable<Terminal, Counter.Child[]> RequestChildren = new();
    private static readonly ConditionalWeakTable<RuleGraph, Histogram.Child> DurationChildren = new();

    /// <summary>A request of <paramref name="graph"/> that ended at <paramref name="terminal"/> with <paramref name="status"/>.</summary>
    public static void Record(int status, long started, RuleGraph graph, Terminal terminal)
    {
        var statusClass = Math.Clamp(status / 100, 1, 5) - 1;
        if (!RequestChildren.TryGetValue(terminal, out var children)) children = NewChildren(terminal, graph.Domain.Name);
        children[statusClass].Inc();
        var duration = DurationChildren.GetValue(graph, static g => Duration.WithLabels(g.Domain.Name));
        duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    // Apart, so the closure is made for a new terminal only (a lambda capturing a local of Record would
    // cost an allocation on every request).
    private static Counter.Child[] NewChildren(Terminal terminal, string domain) =>
        RequestChildren.GetValue(terminal, t => Classes.Select(c => Requests.WithLabels(domain, t.Id, c)).ToArray());
}
