using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading.Channels;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;

namespace EdgeEru.Core.Logs;

/// <summary>What to read: an app (or one entrypoint), lines from before now per agent, and whether to follow.</summary>
public sealed record AgentLogQuery(string App, string? Entrypoint, int Tail, bool Follow);

/// <summary>How reading ended: every agent asked (some may have failed), none to ask, or none that answered.</summary>
public enum AgentLogOutcome
{
    Done,
    NoAgent,
    NoAgentAnswered,
}

/// <summary>
/// An app's container output from every agent hosting it (found through the registry: workload records name the
/// nodes, heartbeats the agents' URLs): tails merged by time, then live lines as they come. eru-core relays it to
/// <c>eru logs</c> (the agents' token stays with Core); the CLI's own etcd path uses it too.
/// </summary>
public static class AgentLogs
{
    /// <summary>
    /// Reads the agents and hands each JSON record to <paramref name="line"/> (with whether more are waiting, to flush
    /// when not), one at a time; <paramref name="note"/> gets what the reader should know (an agent that failed, a
    /// stream opened again, a node joining), possibly from several agents at once.
    /// </summary>
    public static async Task<AgentLogOutcome> RunAsync(AgentLogQuery q, string agentToken, RegistryWatcher watcher,
        Func<string, bool, Task> line, Func<string, Task> note, CancellationToken ct)
    {
        var (agents, problems) = Agents(watcher.Current, q.App, q.Entrypoint);
        foreach (var p in problems) await note(p);
        var target = q.Entrypoint is null ? q.App : q.App + "." + q.Entrypoint;
        if (agents.Count == 0 && !q.Follow) return AgentLogOutcome.NoAgent;

        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", agentToken);
        var filter = $"/logs?app={Uri.EscapeDataString(q.App)}"
            + (q.Entrypoint is null ? "" : "&entrypoint=" + Uri.EscapeDataString(q.Entrypoint));
        var query = filter + $"&tail={q.Tail}&follow={(q.Follow ? "true" : "false")}";
        // With -f, a stream that ends (the agent restarted, the network broke) is opened again for live lines.
        var liveQuery = filter + "&tail=0&follow=true";
        var live = Channel.CreateUnbounded<string>();
        var tails = agents
            .Select(a => new TaskCompletionSource<List<string>>(TaskCreationOptions.RunContinuationsAsynchronously)).ToList();
        var failures = 0;

        // One reader per agent. Agents known at the start give their tails first (merged by time); an agent
        // that starts hosting the app while -f follows (a deploy onto a new node) is read from then on.
        Task Read((string Node, string Url) a, TaskCompletionSource<List<string>>? tail) => Task.Run(async () =>
        {
            var quiet = false; // one message per outage, not one per attempt
            var opened = false; // an agent that answered once counts as reached, whatever happens later
            for (var attempt = 0; !ct.IsCancellationRequested; attempt++)
            {
                var tailLines = new List<string>();
                var retry = q.Follow;
                try
                {
                    using var resp = await http.GetAsync(
                        new Uri(a.Url.TrimEnd('/') + (attempt == 0 ? query : liveQuery)), HttpCompletionOption.ResponseHeadersRead, ct);
                    if (!resp.IsSuccessStatusCode)
                    {
                        await note($"agent of {a.Node} ({a.Url}): {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync(ct)}");
                        if (!opened && attempt == 0) Interlocked.Increment(ref failures);
                        retry &= (int)resp.StatusCode >= 500; // a refused token or query stays refused
                    }
                    else
                    {
                        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct));
                        quiet = false;
                        opened = true;
                        var inTail = tail is not null;
                        while (await reader.ReadLineAsync(ct) is { } text)
                        {
                            if (inTail && text.Length == 0)
                            {
                                inTail = false; // the agent's mark between tail and live lines
                                tail!.TrySetResult(tailLines);
                            }
                            else if (inTail) tailLines.Add(text);
                            else if (text.Length > 0) await live.Writer.WriteAsync(text, ct);
                        }
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException)
                {
                    if (!quiet) await note($"agent of {a.Node} ({a.Url}): {ex.Message}");
                    if (!opened && attempt == 0) Interlocked.Increment(ref failures);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                finally
                {
                    tail?.TrySetResult(tailLines);
                }
                if (!retry) return;
                if (!quiet) await note($"the stream of {a.Node} ended; opening it again (every second)");
                quiet = true;
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }, CancellationToken.None);

        var readers = agents.Select((a, i) => Read(a, tails[i])).ToList();
        var reading = new HashSet<string>(agents.Select(a => a.Node), StringComparer.Ordinal);
        using var joins = q.Follow
            ? watcher.Subscribe(s =>
            {
                foreach (var a in Agents(s, q.App, q.Entrypoint).Agents)
                    lock (reading)
                        if (reading.Add(a.Node))
                        {
                            _ = note($"{target} now also runs on {a.Node}; following its agent");
                            readers.Add(Read(a, null));
                        }
            })
            : null;
        if (!q.Follow) _ = Task.WhenAll(readers).ContinueWith(_ => live.Writer.TryComplete(), TaskScheduler.Default);

        try
        {
            // Tails from every agent first, merged by time; then live lines in the order they arrive.
            var allTails = await Task.WhenAll(tails.Select(t => t.Task)).WaitAsync(ct);
            var merged = MergeByTime(allTails.SelectMany(t => t)).ToList();
            for (var i = 0; i < merged.Count; i++) await line(merged[i], i + 1 < merged.Count);
            await foreach (var text in live.Reader.ReadAllAsync(ct)) await line(text, live.Reader.Count > 0);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        joins?.Dispose();
        Task[] all;
        lock (reading) all = [.. readers];
        await Task.WhenAll(all);
        return agents.Count > 0 && failures == agents.Count ? AgentLogOutcome.NoAgentAnswered : AgentLogOutcome.Done;
    }

    /// <summary>The agents hosting the app (or one entrypoint), and why some cannot be asked.</summary>
    public static (List<(string Node, string Url)> Agents, List<string> Problems) Agents(RegistrySnapshot s, string app, string? entrypoint)
    {
        var agents = new List<(string, string)>();
        var problems = new List<string>();
        var nodes = s.Workloads.Select(w => w.Record)
            .Where(r => r is not null && r.App == app && (entrypoint is null || r.Entrypoint == entrypoint))
            .Select(r => r!.Node).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            if (!s.NodeStatuses.TryGetValue(node, out var status))
                problems.Add($"node {node} has no agent heartbeat; its lines are missing");
            else if (status.AgentUrl is null) problems.Add($"the agent of node {node} publishes no agent_url; its lines are missing");
            else agents.Add((node, status.AgentUrl));
        }
        return (agents, problems);
    }

    /// <summary>JSON records ordered by their time (stable: lines of one agent with equal times keep their order).</summary>
    public static IEnumerable<string> MergeByTime(IEnumerable<string> lines) =>
        lines.Select(l => (Line: l, Time: TimeOf(l))).OrderBy(x => x.Time).Select(x => x.Line);

    private static DateTimeOffset TimeOf(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.TryGetProperty("time", out var t) && t.TryGetDateTimeOffset(out var time)
                ? time
                : DateTimeOffset.MinValue;
        }
        catch (JsonException)
        {
            return DateTimeOffset.MinValue;
        }
    }
}
