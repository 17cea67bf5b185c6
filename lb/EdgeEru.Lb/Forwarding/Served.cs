using System.Diagnostics;
using EdgeEru.Lb.AccessLog;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Routing;

namespace EdgeEru.Lb.Forwarding;

/// <summary>A request as its access-log line describes it; asked only while the access log is on.</summary>
internal interface ILoggedRequest
{
    string Client { get; }
    string Method { get; }

    /// <summary>The Host header as the client sent it (with the port).</summary>
    string Host { get; }

    /// <summary>The target as the client sent it (the graph may have rewritten the path since).</summary>
    string Target { get; }
    string Protocol { get; }
    string? UserAgent { get; }
}

/// <summary>What every answered request leaves behind, whichever front answered it: its metrics and its access-log line.</summary>
internal static class Served
{
    /// <summary>
    /// A request that ended with <paramref name="status"/>: counted for its graph and terminal (none when no domain
    /// served its host), and logged with the destination tried last.
    /// </summary>
    public static void Record<TRequest>(AccessLogWriter log, TRequest request, int status, long started,
        RuleGraph? graph, Terminal? terminal, Destination? destination)
        where TRequest : struct, ILoggedRequest
    {
        if (graph is not null && terminal is not null) RequestMetrics.Record(status, started, graph, terminal);
        if (!log.Enabled) return;
        log.Write(new AccessEntry(DateTime.UtcNow, request.Client, request.Method, request.Host, request.Target, request.Protocol, status,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, graph?.Domain.Name, terminal?.Id,
            destination?.Authority, destination?.WorkloadId, request.UserAgent));
    }
}
