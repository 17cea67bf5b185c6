using Docker.DotNet;
using EdgeEru.Core.Docker;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// Follows the stdout and stderr of every running EdgeEru container of the node (as the agent sees
/// them) and publishes each line. A container that restarts is followed again from its new start; a
/// broken stream is reopened from the last line received. Lines written before the agent started are not
/// shipped again.
/// </summary>
public sealed class LogShipper(NodeAgent agent, DockerEngine engine, LogHub hub, LogsOptions options, ILogger<LogShipper> log)
{
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    private readonly Dictionary<string, Attachment> _attached = new(StringComparer.Ordinal);

    private sealed class Attachment(DateTimeOffset startedAt)
    {
        public DateTimeOffset StartedAt { get; } = startedAt;
        public DateTimeOffset LastRead { get; set; }
        public Task Run { get; set; } = Task.CompletedTask;
        public CancellationTokenSource Stop { get; } = new();
    }

    public async Task RunAsync(CancellationToken ct)
    {
        using var changed = new SemaphoreSlim(0);
        void OnChanged() => changed.Release();
        agent.ContainersChanged += OnChanged;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Sync();
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
        }
    }

    private static readonly TimeSpan StartMargin = TimeSpan.FromSeconds(2);

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private void Sync()
    {
        var containers = agent.Containers;
        foreach (var c in containers.Values)
        {
            // Only this cluster's workloads: a container whose record comes later is attached then, from its start.
            if (!c.Running || !c.Labels.TryGetValue(DockerEngine.AppLabel, out var app) || !agent.IsRecorded(c.Id)) continue;
            _attached.TryGetValue(c.Id, out var current);
            if (current is not null && current.StartedAt == c.StartedAt && !current.Run.IsCompleted) continue;
            // Same run, stream broken: from the last line read. A new run: from its start — less a margin, as
            // Docker stamps StartedAt after the process may already have written — but not before the last
            // line of the previous run, nor before this agent started.
            var since = current is not null && current.StartedAt == c.StartedAt && current.LastRead != default ? current.LastRead
                : Max(Max(_started, c.StartedAt - StartMargin), current is null || current.LastRead == default ? default : current.LastRead.AddMilliseconds(1));
            var a = new Attachment(c.StartedAt) { LastRead = current?.StartedAt == c.StartedAt ? current.LastRead : default };
            if (current is not null) _ = current.Run.ContinueWith(_ => current.Stop.Dispose(), TaskScheduler.Default); // the previous run's stream ends by itself
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
        }
    }

    private async Task FollowAsync(ContainerState c, string app, DateTimeOffset since, Attachment a)
    {
        var entrypoint = c.Labels.GetValueOrDefault(DockerEngine.EntrypointLabel, "");
        var ident = c.Labels.GetValueOrDefault(DockerEngine.IdentLabel, c.Id[..Math.Min(12, c.Id.Length)]);
        var stdout = new LineSplitter(options.MaxLineBytes);
        var stderr = new LineSplitter(options.MaxLineBytes);
        void Publish(string stream, string line) => hub.Publish(new LogRecord
        {
            ContainerId = c.Id, App = app, Entrypoint = entrypoint, Ident = ident, Node = agent.Node,
            Stream = stream, Time = DateTimeOffset.UtcNow, Line = line, Seq = hub.NextSeq(),
        });
        try
        {
            using var stream = await engine.FollowLogsAsync(c.Id, since, a.Stop.Token);
            log.LogDebug("following the output of {Container} ({App}.{Entrypoint}.{Ident})", c.Name, app, entrypoint, ident);
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, a.Stop.Token);
                if (read.EOF) break;
                a.LastRead = DateTimeOffset.UtcNow;
                if (read.Target == MultiplexedStream.TargetStream.StandardError) stderr.Feed(buffer.AsSpan(0, read.Count), l => Publish("stderr", l));
                else stdout.Feed(buffer.AsSpan(0, read.Count), l => Publish("stdout", l));
            }
        }
        catch (OperationCanceledException) when (a.Stop.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is DockerApiException or HttpRequestException or IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            log.LogDebug("output of {Container}: {Error}", c.Name, ex.Message);
        }
        stdout.Flush(l => Publish("stdout", l));
        stderr.Flush(l => Publish("stderr", l));
    }
}
