using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading.Channels;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru logs [-f] [--tail N] APP[.ENTRYPOINT]</c>: the app's output from every agent hosting it (found through
/// the registry: workload records name the nodes, heartbeats the agents' URLs), tails merged by time, then
/// live lines as they come.
/// </summary>
public static class LogsCommand
{
    public static Command Create()
    {
        var target = new Argument<string>("app") { Description = "APP or APP.ENTRYPOINT" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep following new lines" };
        var tail = new Option<int>("--tail", "-n")
        {
            Description = "Lines from before now, per agent (merged by time)", DefaultValueFactory = _ => 20,
        };
        var json = new Option<bool>("--json") { Description = "Print the agents' JSON records as they are" };
        var etcd = new Option<string>("--etcd")
        {
            Description = "etcd client URL (https: client certificate from $ERU_ETCD_CERT, $ERU_ETCD_KEY, CA from $ERU_ETCD_CA)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_ETCD") ?? "http://127.0.0.1:23790",
        };
        var prefix = new Option<string>("--prefix") { DefaultValueFactory = _ => RegistryKeys.DefaultPrefix };
        var token = new Option<string?>("--token")
        {
            Description = "The agents' Http:Token (default: $ERU_AGENT_TOKEN, else .dev/agent.token)",
        };
        tail.Validators.Add(r =>
        {
            if (r.GetValue(tail) is < 0 or > 100_000) r.AddError("--tail must be between 0 and 100000");
        });
        var cmd = new Command("logs", "Show an app's container output from the agents hosting it")
            { target, follow, tail, json, etcd, prefix, token };
        cmd.SetAction(async (pr, ct) =>
        {
            var t = pr.GetValue(token) ?? Environment.GetEnvironmentVariable("ERU_AGENT_TOKEN")
                ?? (File.Exists(".dev/agent.token") ? (await File.ReadAllTextAsync(".dev/agent.token", ct)).Trim() : null);
            return await RunAsync(
                new LogsRequest(pr.GetValue(target)!, pr.GetValue(follow), pr.GetValue(tail), pr.GetValue(json), pr.GetValue(etcd)!,
                    pr.GetValue(prefix)!, t),
                Console.Out, Console.Error, ct);
        });
        return cmd;
    }

    public sealed record LogsRequest(string Target, bool Follow, int Tail, bool Json, string Etcd, string Prefix, string? Token);

    public static async Task<int> RunAsync(LogsRequest req, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var parts = req.Target.Split('.');
        if (parts.Length > 2 || !parts.All(Names.IsLabel))
        {
            await stderr.WriteLineAsync($"eru logs: \"{req.Target}\" is not APP or APP.ENTRYPOINT (DNS labels)");
            return 2;
        }
        var (app, entrypoint) = (parts[0], parts.Length == 2 ? parts[1] : null);
        if (string.IsNullOrEmpty(req.Token))
        {
            await stderr.WriteLineAsync("eru logs: no agent token: pass --token, set ERU_AGENT_TOKEN, or run where .dev/agent.token is");
            return 2;
        }
        var (view, code) = await RegistryView.OpenAsync("logs", req.Etcd, req.Prefix, stderr, ct);
        if (view is null) return code;
        await using var owned = view;
        var watcher = view.Watcher;
        var (agents, problems) = Agents(watcher.Current, app, entrypoint);
        foreach (var p in problems) await stderr.WriteLineAsync("eru logs: " + p);
        if (agents.Count == 0 && !req.Follow)
        {
            await stderr.WriteLineAsync($"eru logs: no agent to ask about {req.Target}");
            return 1;
        }

        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", req.Token);
        var query = $"/logs?app={app}{(entrypoint is null ? "" : "&entrypoint=" + entrypoint)}" +
            $"&tail={req.Tail}&follow={(req.Follow ? "true" : "false")}";
        // With -f, a stream that ends (the agent restarted, the network broke) is opened again for live lines.
        var liveQuery = $"/logs?app={app}{(entrypoint is null ? "" : "&entrypoint=" + entrypoint)}&tail=0&follow=true";
        var live = Channel.CreateUnbounded<string>();
        var tails = agents.Select(a => new TaskCompletionSource<List<string>>(TaskCreationOptions.RunContinuationsAsynchronously)).ToList();
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
                var retry = req.Follow;
                try
                {
                    using var resp = await http.GetAsync(
                        new Uri(a.Url.TrimEnd('/') + (attempt == 0 ? query : liveQuery)), HttpCompletionOption.ResponseHeadersRead, ct);
                    if (!resp.IsSuccessStatusCode)
                    {
                        await stderr.WriteLineAsync(
                            $"eru logs: agent of {a.Node} ({a.Url}): {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync(ct)}");
                        if (!opened && attempt == 0) Interlocked.Increment(ref failures);
                        retry &= (int)resp.StatusCode >= 500; // a refused token or query stays refused
                    }
                    else
                    {
                        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct));
                        quiet = false;
                        opened = true;
                        var inTail = tail is not null;
                        while (await reader.ReadLineAsync(ct) is { } line)
                        {
                            if (inTail && line.Length == 0)
                            {
                                inTail = false; // the agent's mark between tail and live lines
                                tail!.TrySetResult(tailLines);
                            }
                            else if (inTail) tailLines.Add(line);
                            else if (line.Length > 0) await live.Writer.WriteAsync(line, ct);
                        }
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException)
                {
                    if (!quiet) await stderr.WriteLineAsync($"eru logs: agent of {a.Node} ({a.Url}): {ex.Message}");
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
                if (!quiet) await stderr.WriteLineAsync($"eru logs: the stream of {a.Node} ended; opening it again (every second)");
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
        using var joins = req.Follow
            ? watcher.Subscribe(s =>
            {
                foreach (var a in Agents(s, app, entrypoint).Agents)
                    lock (reading)
                        if (reading.Add(a.Node))
                        {
                            stderr.WriteLine($"eru logs: {req.Target} now also runs on {a.Node}; following its agent");
                            readers.Add(Read(a, null));
                        }
            })
            : null;
        if (!req.Follow) _ = Task.WhenAll(readers).ContinueWith(_ => live.Writer.TryComplete(), TaskScheduler.Default);

        try
        {
            // Tails from every agent first, merged by time; then live lines in the order they arrive.
            var allTails = await Task.WhenAll(tails.Select(t => t.Task)).WaitAsync(ct);
            foreach (var line in MergeByTime(allTails.SelectMany(t => t))) await Print(stdout, line, req.Json);
            await stdout.FlushAsync(ct);
            await foreach (var line in live.Reader.ReadAllAsync(ct))
            {
                await Print(stdout, line, req.Json);
                if (live.Reader.Count == 0) await stdout.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        joins?.Dispose();
        Task[] all;
        lock (reading) all = [.. readers];
        await Task.WhenAll(all);
        return agents.Count > 0 && failures == agents.Count ? 1 : 0;
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

    private static Task Print(TextWriter w, string json, bool raw)
    {
        if (raw) return w.WriteLineAsync(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            string S(string name) => r.TryGetProperty(name, out var v) ? v.GetString() ?? "" : "";
            var time = r.TryGetProperty("time", out var t) && t.TryGetDateTimeOffset(out var dt)
                ? dt.UtcDateTime.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)
                : "--:--:--.---";
            var err = S("stream") == "stderr" ? " !" : "";
            return w.WriteLineAsync($"{time} {S("entrypoint")}.{S("ident")}@{S("node")}{err} {S("line")}");
        }
        catch (JsonException)
        {
            return w.WriteLineAsync(json);
        }
    }
}
