using EdgeEru.Lb.Transport;

namespace EdgeEru.Lb.Backends;

/// <summary>A kept-alive connection to a workload, with the buffer its responses are read into.</summary>
internal sealed class UpstreamConnection(EpollSocket socket) : IDisposable
{
    public EpollSocket Socket { get; } = socket;
    public byte[] Buffer { get; } = new byte[16 * 1024];
    public long IdleSince { get; set; }

    /// <summary>Set by the timeout sweep or an aborted client: the pending read fails and the connection is not reused.</summary>
    public volatile bool Aborted;
    public volatile bool TimedOut;
    public long Deadline;
    public int TimeoutMs;

    /// <summary>Progress: the timeout counts from here (an activity timeout, as YARP's).</summary>
    public void Touch() => Volatile.Write(ref Deadline, Environment.TickCount64 + TimeoutMs);

    public void Abort()
    {
        Aborted = true;
        Socket.Dispose();
    }

    public void Dispose() => Socket.Dispose();
}

/// <summary>
/// Idle connections to one destination, newest first (a connection the workload is about to time out is
/// the one left at the bottom). One taken from here saw nothing arrive while idle.
/// </summary>
internal sealed class UpstreamPool
{
    private const int MaxIdle = 256;
    private static readonly long IdleLimit = TimeSpan.FromSeconds(50).Ticks; // under common keep-alive timeouts (nginx 75 s, Kestrel 130 s)
    private readonly Lock _gate = new();
    private readonly Stack<UpstreamConnection> _idle = new();
    private int _swept; // 1 while in Pools

    // Every second: requests past their deadline are aborted, and connections idle too long are closed (also
    // those of destinations that left the registry, whose pools nobody rents from any more).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<UpstreamPool, byte> Pools = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<UpstreamConnection, byte> Busy = new();
    private static readonly Timer Sweeper = new(static _ => Sweep(), null, 1000, 1000);

    /// <summary>Watches <paramref name="c"/> until <see cref="Done"/>: past <paramref name="timeoutMs"/> without progress it is aborted.</summary>
    public static void Begin(UpstreamConnection c, int timeoutMs)
    {
        c.TimeoutMs = timeoutMs;
        c.Touch();
        Busy.TryAdd(c, 0);
    }

    public static void Done(UpstreamConnection c) => Busy.TryRemove(c, out _);

    private static void Sweep()
    {
        var now = Environment.TickCount64;
        foreach (var c in Busy.Keys)
            if (now > Volatile.Read(ref c.Deadline))
            {
                c.TimedOut = true;
                c.Abort();
                Busy.TryRemove(c, out _);
            }
        var idleBefore = now * TimeSpan.TicksPerMillisecond - IdleLimit;
        foreach (var pool in Pools.Keys)
            lock (pool._gate)
            {
                if (pool._idle.Count == 0)
                {
                    Pools.TryRemove(pool, out _);
                    pool._swept = 0;
                    continue;
                }
                // The stack's bottom holds the oldest: keep the young ones in order, close the rest.
                var young = pool._idle.Where(c => c.IdleSince > idleBefore).Reverse().ToList();
                foreach (var c in pool._idle.Where(c => c.IdleSince <= idleBefore)) c.Dispose();
                pool._idle.Clear();
                foreach (var c in young) pool._idle.Push(c);
            }
    }

    public UpstreamConnection? Rent()
    {
        var now = Environment.TickCount64 * TimeSpan.TicksPerMillisecond;
        while (true)
        {
            UpstreamConnection? c;
            lock (_gate)
                if (!_idle.TryPop(out c)) return null;
            if (c.Socket.IsQuiet && now - c.IdleSince < IdleLimit) return c;
            c.Dispose();
        }
    }

    public void Return(UpstreamConnection c)
    {
        c.IdleSince = Environment.TickCount64 * TimeSpan.TicksPerMillisecond;
        lock (_gate)
        {
            if (_idle.Count < MaxIdle)
            {
                _idle.Push(c);
                if (_swept == 0)
                {
                    _swept = 1;
                    Pools.TryAdd(this, 0);
                }
                return;
            }
        }
        c.Dispose();
    }

}
