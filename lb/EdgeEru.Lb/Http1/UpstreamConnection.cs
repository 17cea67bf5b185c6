using EdgeEru.Lb.Transport;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// A kept-alive connection to a workload, with the request head written for it and the buffer its responses
/// are read into (both kept from one request to the next).
/// </summary>
internal sealed class UpstreamConnection : IDisposable
{
    public UpstreamConnection(EpollSocket socket)
    {
        Socket = socket;
        UpstreamPool.Track(this);
    }

    public EpollSocket Socket { get; }

    /// <summary>The head of the request in flight, written anew for each.</summary>
    public HeadWriter RequestHead { get; } = new(1024);

    /// <summary>What the workload sent and the exchange has not handed on yet.</summary>
    public ReadBuffer Response { get; } = new(16 * 1024);

    /// <summary>
    /// Anything of an answer came since the request began: a connection that breaks before that is as good as unreachable.
    /// </summary>
    public bool HeardBack { get; private set; }

    /// <summary>When it went back to its pool (Environment.TickCount64, ms).</summary>
    public long IdleSinceMs { get; set; }

    // Idle → Busy while a request uses it; Busy → Aborted by the timeout sweep or a client gone, and then it
    // is never pooled again. One compare-exchange decides between a finishing request and a late abort.
    private const int Idle = 0, Busy = 1, AbortedState = 2;
    private int _state;
    private int _timeoutMs;
    private long _deadline;
    private int _disposed;

    /// <summary>Aborted by the timeout sweep (the request gets a 504) rather than by the client leaving.</summary>
    public bool TimedOut { get; private set; }
    public bool Aborted => Volatile.Read(ref _state) == AbortedState;
    public bool IsBusy => Volatile.Read(ref _state) == Busy;
    public long Deadline => Volatile.Read(ref _deadline);

    /// <summary>A request takes it: past <paramref name="timeoutMs"/> without progress the sweep aborts it.</summary>
    public void Begin(int timeoutMs)
    {
        _timeoutMs = timeoutMs;
        Response.Clear();
        HeardBack = false;
        Touch();
        Volatile.Write(ref _state, Busy);
    }

    /// <summary>Progress: the timeout counts from here (an activity timeout, as YARP's).</summary>
    public void Touch() => Volatile.Write(ref _deadline, Environment.TickCount64 + _timeoutMs);

    /// <summary><paramref name="n"/> bytes of the answer arrived in <see cref="Response"/>.</summary>
    public void Received(int n)
    {
        Response.Filled(n);
        HeardBack = true;
        Touch();
    }

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
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        UpstreamPool.Untrack(this);
        Socket.Dispose();
        RequestHead.Dispose();
    }
}
