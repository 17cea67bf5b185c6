using Docker.DotNet;
using EdgeEru.Docker;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// Follows the stdout and stderr of every running EdgeEru container of the node (as the agent sees
/// them) and publishes each line with Docker's timestamp. A container that restarts is followed again from
/// its new start; a broken stream is reopened from the last line received. With a cursor file
/// (<see cref="LogCursors"/>) a restarted agent goes on after the last line it shipped, so lines written
/// while it was down are shipped too; without one, lines written before the agent started are not.
/// </summary>
public sealed class LogShipper(
    NodeAgent agent, DockerEngine engine, LogHub hub, LogsOptions options, ILogger<LogShipper> log, LogCursors cursors)
{
    private readonly long _started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
    private readonly Dictionary<string, Attachment> _attached = new(StringComparer.Ordinal);

    private sealed class Attachment(DateTimeOffset startedAt)
    {
        public DateTimeOffset StartedAt { get; } = startedAt;

        /// <summary>Docker's timestamp (Unix ns) of the last line read from this run; 0 before the first.</summary>
        public long LastRead { get; set; }
        public Task Run { get; set; } = Task.CompletedTask;
        public CancellationTokenSource Stop { get; } = new();
    }

    public async Task RunAsync(CancellationToken ct)
    {
        using var changed = new SemaphoreSlim(0);
        void OnChanged() => changed.Release();
        agent.ContainersChanged += OnChanged;
        cursors.Load();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Sync();
                cursors.Save();
                try
                {
                    await changed.WaitAsync(TimeSpan.FromSeconds(1), ct);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            agent.ContainersChanged -= OnChanged;
            foreach (var a in _attached.Values) await a.Stop.CancelAsync();
            await Task.WhenAll(_attached.Values.Select(a => a.Run));
            cursors.Save();
        }
    }

    private static readonly long StartMargin = 2_000_000_000; // ns

    private void Sync()
    {
        var containers = agent.Containers;
        foreach (var c in containers.Values)
        {
            // Only this cluster's workloads: a container whose record comes later is attached then, from its start.
            if (!c.Labels.TryGetValue(DockerEngine.AppLabel, out var app) || !agent.IsRecorded(c.Id)) continue;
            _attached.TryGetValue(c.Id, out var current);
            if (current is not null && current.StartedAt == c.StartedAt && (!current.Run.IsCompleted || !c.Running)) continue;
            if (!c.Running && !Unread(c)) continue;
            // After the last line shipped, when there is one (this run's, or a previous agent's from the cursor
            // file). Else from the run's start — less a margin, as Docker stamps StartedAt after the process may
            // already have written — but not before this agent started (without a cursor, older lines are history).
            var startNanos = c.StartedAt.ToUnixTimeMilliseconds() * 1_000_000 - StartMargin;
            var since = cursors.Get(c.Id) is { } cursor ? cursor + 1
                : current is not null && current.LastRead > 0 ? current.LastRead + 1
                : Math.Max(_started, startNanos);
            var a = new Attachment(c.StartedAt) { LastRead = current?.StartedAt == c.StartedAt ? current.LastRead : 0 };
            // The previous run's stream ends by itself.
            if (current is not null) _ = current.Run.ContinueWith(_ => current.Stop.Dispose(), TaskScheduler.Default);
            _attached[c.Id] = a;
            a.Run = Task.Run(() => FollowAsync(c, app, since, a), CancellationToken.None);
        }
        foreach (var id in _attached.Keys.Where(id => !containers.ContainsKey(id)).ToList())
        {
            var gone = _attached[id];
            gone.Stop.Cancel();
            _ = gone.Run.ContinueWith(_ => gone.Stop.Dispose(), TaskScheduler.Default);
            _attached.Remove(id);
            hub.Forget(id);
            cursors.Forget(id);
        }
    }

    /// <summary>
    /// Whether a stopped container's last run may have output this agent never read: it ran and ended between two
    /// looks (its record came late, or it was short), or while the agent was down (a cursor says where the agent
    /// stopped). Docker answers such a follow with the run's lines and ends. Runs older than the agent without a
    /// cursor are history, as for running containers.
    /// </summary>
    private bool Unread(ContainerState c) =>
        c.StartedAt != default
        && (cursors.Get(c.Id) is not null || c.StartedAt.ToUnixTimeMilliseconds() * 1_000_000 + StartMargin >= _started);

    private async Task FollowAsync(ContainerState c, string app, long since, Attachment a)
    {
        var entrypoint = c.Labels.GetValueOrDefault(DockerEngine.EntrypointLabel, "");
        var ident = c.Labels.GetValueOrDefault(DockerEngine.IdentLabel, c.Id[..Math.Min(12, c.Id.Length)]);
        var stdout = new LineSplitter(options.MaxLineBytes);
        var stderr = new LineSplitter(options.MaxLineBytes);
        long stamp = 0;
        // Docker puts its timestamp before each line; a piece of an overlong line goes with its line's.
        void Publish(string stream, string piece, bool startsLine)
        {
            var text = piece;
            if (startsLine && LogCursors.TrySplit(piece, out var nanos, out var rest)) (stamp, text) = (nanos, rest);
            if (stamp != 0 && stamp < since) return; // shipped before (Docker's since is a second-ish boundary)
            a.LastRead = stamp;
            if (stamp != 0) cursors.Advance(c.Id, stamp);
            hub.Publish(new LogRecord
            {
                ContainerId = c.Id, App = app, Entrypoint = entrypoint, Ident = ident, Node = agent.Node, Stream = stream,
                Time = stamp != 0 ? DateTimeOffset.FromUnixTimeMilliseconds(stamp / 1_000_000) : DateTimeOffset.UtcNow, Line = text,
                Seq = hub.NextSeq(),
            });
        }
        try
        {
            using var stream = await engine.FollowLogsAsync(c.Id, since, a.Stop.Token);
            log.LogDebug("following the output of {Container} ({App}.{Entrypoint}.{Ident})", c.Name, app, entrypoint, ident);
            // Docker sends a frame per line (at most 16 KiB of it): a bigger buffer would only hold memory, 200 containers over.
            var buffer = new byte[8 * 1024];
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, a.Stop.Token);
                if (read.EOF) break;
                if (read.Target == MultiplexedStream.TargetStream.StandardError)
                    stderr.Feed(buffer.AsSpan(0, read.Count), (l, s) => Publish("stderr", l, s));
                else stdout.Feed(buffer.AsSpan(0, read.Count), (l, s) => Publish("stdout", l, s));
            }
        }
        catch (OperationCanceledException) when (a.Stop.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is DockerApiException or HttpRequestException or IOException or System.Net.Sockets.SocketException
            or OperationCanceledException)
        {
            log.LogDebug("output of {Container}: {Error}", c.Name, ex.Message);
        }
        stdout.Flush((l, s) => Publish("stdout", l, s));
        stderr.Flush((l, s) => Publish("stderr", l, s));
    }
}
