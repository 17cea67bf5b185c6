using EdgeEru.Lb.Transport;

namespace EdgeEru.Lb.Http1;

/// <summary>A kept-alive connection to a workload, with the buffer its responses are read into.</summary>
internal sealed class UpstreamConnection : IDisposable
{
    public UpstreamConnection(EpollSocket socket)
    {
        Socket = socket;
        UpstreamPool.Track(this);
    }

    public EpollSocket Socket { get; }
    public byte[] Buffer { get; } = new byte[16 * 1024];
    /// <summary>When it went back to its pool (Environment.TickCount64, ms).</summary>
    public long IdleSinceMs { get; set; }

    // Idle → Busy while a request uses it; Busy → Aborted by the timeout sweep or a client gone, and then it
    // is never pooled again. One compare-exchange decides between a finishing request and a late abort.
    private const int Idle = 0, Busy = 1, AbortedState = 2;
    private int _state;
    private int _timeoutMs;
    private long _deadline;

    /// <summary>Aborted by the timeout sweep (the request gets a 504) rather than by the client leaving.</summary>
    public bool TimedOut { get; private set; }
    public bool Aborted => Volatile.Read(ref _state) == AbortedState;
    public bool IsBusy => Volatile.Read(ref _state) == Busy;
    public long Deadline => Volatile.Read(ref _deadline);

    /// <summary>A request takes it: past <paramref name="timeoutMs"/> without progress the sweep aborts it.</summary>
    public void Begin(int timeoutMs)
    {
        _timeoutMs = timeoutMs;
        Touch();
        Volatile.Write(ref _state, Busy);
    }

    /// <summary>Progress: the timeout counts from here (an activity timeout, as YARP's).</summary>
    public void Touch() => Volatile.Write(ref _deadline, Environment.TickCount64 + _timeoutMs);

    /// <summary>The request is done with it: true when it may be pooled (nobody aborted it meanwhile).</summary>
    public bool End() => Interlocked.CompareExchange(ref _state, Idle, Busy) == Busy;

    /// <summary>Fails the pending read or write of the request using it (and only while one does).</summary>
    public void Abort(bool timedOut = false)
    {
        if (Interlocked.CompareExchange(ref _state, AbortedState, Busy) != Busy) return;
        TimedOut = timedOut;
        Socket.Dispose();
    }

    public void Dispose()
    {
        UpstreamPool.Untrack(this);
        Socket.Dispose();
    }
}
