using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Transport;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// Idle connections to one destination, newest first (a connection the workload is about to time out is
/// the one left at the bottom), kept apart per event loop: a request running on a loop takes one of that
/// loop's, so it never waits on another core's thread, and each stack's lock is only ever taken by one core
/// (and the sweep). One taken from here saw nothing arrive while idle.
/// </summary>
internal sealed class UpstreamPool
{
    private const int MaxIdlePerLoop = 256;
    private const long IdleLimitMs = 50_000; // under common keep-alive timeouts (nginx 75 s, Kestrel 130 s)
    private readonly Idle[] _byLoop = Enumerable.Range(0, EpollLoop.Count).Select(_ => new Idle()).ToArray();
    private int _listed; // 1: in Pools

    private sealed class Idle
    {
        public readonly Lock Gate = new();
        public readonly Stack<UpstreamConnection> Connections = new();
    }

    // Every second: requests past their deadline are aborted, and connections idle too long are closed (also
    // those of destinations that left the registry, whose pools nobody rents from any more).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<UpstreamPool, byte> Pools = new();
    // Every open connection (added once per connection, not per request): the sweep finds the busy ones.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<UpstreamConnection, byte> Open = new();
    private static readonly Timer Sweeper = new(static _ => Sweep(), null, 1000, 1000);

    internal static void Track(UpstreamConnection c) => Open.TryAdd(c, 0);
    internal static void Untrack(UpstreamConnection c) => Open.TryRemove(c, out _);

    private static void Sweep()
    {
        var now = Environment.TickCount64;
        foreach (var c in Open.Keys)
            if (c.IsBusy && now > c.Deadline) c.Abort(timedOut: true);
        var idleBefore = now - IdleLimitMs;
        foreach (var pool in Pools.Keys)
        {
            var left = 0;
            foreach (var idle in pool._byLoop)
                lock (idle.Gate)
                {
                    // The stack's bottom holds the oldest: keep the young ones in order, close the rest.
                    var young = idle.Connections.Where(c => c.IdleSinceMs > idleBefore).Reverse().ToList();
                    foreach (var c in idle.Connections.Where(c => c.IdleSinceMs <= idleBefore)) c.Dispose();
                    idle.Connections.Clear();
                    foreach (var c in young) idle.Connections.Push(c);
                    left += young.Count;
                }
            if (left > 0) continue;
            // Unlisted when empty; a Return racing with this lists it again (it sets the flag after pushing).
            Volatile.Write(ref pool._listed, 0);
            Pools.TryRemove(pool, out _);
            if (pool._byLoop.Any(i => { lock (i.Gate) return i.Connections.Count > 0; })) pool.List();
        }
    }

    /// <summary>The kept-alive connections to <paramref name="destination"/>.</summary>
    public static UpstreamPool Of(Destination destination)
    {
        if (destination.Connections is UpstreamPool pool) return pool;
        Interlocked.CompareExchange(ref destination.Connections, new UpstreamPool(), null);
        return (UpstreamPool)destination.Connections;
    }

    /// <summary>An idle connection of the caller's loop (off the loops: of any loop), or null.</summary>
    public UpstreamConnection? Rent()
    {
        if (EpollLoop.Current is { } loop) return Rent(_byLoop[loop.Index]);
        foreach (var idle in _byLoop)
            if (Rent(idle) is { } c) return c;
        return null;
    }

    private static UpstreamConnection? Rent(Idle idle)
    {
        var now = Environment.TickCount64;
        while (true)
        {
            UpstreamConnection? c;
            lock (idle.Gate)
                if (!idle.Connections.TryPop(out c)) return null;
            if (c.Socket.IsQuiet && now - c.IdleSinceMs < IdleLimitMs) return c;
            c.Dispose();
        }
    }

    /// <summary>Back among the idle ones of the loop the connection lives on.</summary>
    public void Return(UpstreamConnection c)
    {
        c.IdleSinceMs = Environment.TickCount64;
        var idle = _byLoop[c.Socket.Loop.Index];
        lock (idle.Gate)
        {
            if (idle.Connections.Count >= MaxIdlePerLoop)
            {
                c.Dispose();
                return;
            }
            idle.Connections.Push(c);
        }
        if (Volatile.Read(ref _listed) == 0) List();
    }

    private void List()
    {
        if (Interlocked.Exchange(ref _listed, 1) == 0) Pools.TryAdd(this, 0);
    }
}
