using System.Collections.Concurrent;
using System.Threading.Channels;
using EdgeEru.Agent.Logs.Sinks;
using Prometheus;

namespace EdgeEru.Agent.Logs;

/// <summary>Which lines a stream API client follows: one container (id or id prefix), or an app and optionally one entrypoint.</summary>
public sealed record LogFilter(string? Container, string? App, string? Entrypoint)
{
    public bool Matches(LogRecord r) =>
        Container is not null ? r.ContainerId.StartsWith(Container, StringComparison.Ordinal)
        : r.App == App && (Entrypoint is null || r.Entrypoint == Entrypoint);
}

/// <summary>
/// Where every line of the node goes: each sink that takes its app, the last lines of its container (for
/// tails), and every stream API follower whose filter matches. Nothing here waits: sinks and followers
/// have bounded buffers and drop what does not fit.
/// </summary>
public sealed class LogHub(IReadOnlyList<LogSink> sinks, LogsOptions options)
{
    private static readonly Counter Read = Metrics.CreateCounter("eru_agent_log_lines_read_total", "Lines read from containers' output.");
    private static readonly Counter FollowerDrops = Metrics.CreateCounter("eru_agent_log_follower_dropped_total",
        "Lines a slow stream API client did not take in time.");
    private readonly ConcurrentDictionary<string, Ring> _tails = new(StringComparer.Ordinal);
    private Follower[] _followers = [];
    private long _seq;

    public IReadOnlyList<LogSink> Sinks => sinks;

    public long NextSeq() => Interlocked.Increment(ref _seq);

    public void Publish(LogRecord r)
    {
        Read.Inc();
        foreach (var s in sinks)
            if (s.Accepts(r)) s.Offer(r);
        if (options.Tail > 0) _tails.GetOrAdd(r.ContainerId, _ => new Ring(options.Tail)).Add(r);
        foreach (var f in Volatile.Read(ref _followers))
            if (f.Filter.Matches(r) && !f.Lines.Writer.TryWrite(r)) FollowerDrops.Inc();
    }

    /// <summary>The last <paramref name="n"/> lines matching the filter, oldest first.</summary>
    public IReadOnlyList<LogRecord> Tail(LogFilter filter, int n)
    {
        if (n <= 0) return [];
        var lines = new List<LogRecord>();
        foreach (var ring in _tails.Values) lines.AddRange(ring.Snapshot().Where(filter.Matches));
        return [.. lines.OrderBy(r => r.Seq).TakeLast(n)];
    }

    /// <summary>A container is gone for good: its tail goes too.</summary>
    public void Forget(string containerId) => _tails.TryRemove(containerId, out _);

    /// <summary>Follows lines matching <paramref name="filter"/> from now on until disposed.</summary>
    public Follower Follow(LogFilter filter)
    {
        var f = new Follower(this, filter, Channel.CreateBounded<LogRecord>(
            new BoundedChannelOptions(options.FollowerBuffer) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true }));
        lock (_tails) _followers = [.. _followers, f];
        return f;
    }

    private void Remove(Follower f)
    {
        lock (_tails) _followers = [.. _followers.Where(x => x != f)];
    }

    public sealed class Follower(LogHub hub, LogFilter filter, Channel<LogRecord> lines) : IDisposable
    {
        public LogFilter Filter { get; } = filter;
        public Channel<LogRecord> Lines { get; } = lines;

        public void Dispose()
        {
            hub.Remove(this);
            Lines.Writer.TryComplete();
        }
    }

    private sealed class Ring(int capacity)
    {
        private readonly LogRecord[] _items = new LogRecord[capacity];
        private int _next;
        private int _count;

        public void Add(LogRecord r)
        {
            lock (_items)
            {
                _items[_next] = r;
                _next = (_next + 1) % _items.Length;
                _count = Math.Min(_count + 1, _items.Length);
            }
        }

        public LogRecord[] Snapshot()
        {
            lock (_items)
            {
                var result = new LogRecord[_count];
                for (var i = 0; i < _count; i++) result[i] = _items[(_next - _count + i + _items.Length) % _items.Length];
                return result;
            }
        }
    }
}
