using System.Threading.Tasks.Sources;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// One direction of a socket (readable or writable) as epoll reports it: an edge sets it, the one waiter
/// (the socket's reader or writer) consumes it. The waiter's continuation runs on the thread that set it,
/// the event loop, so a request goes from its bytes to its answer without a hop through the thread pool.
/// </summary>
internal sealed class Readiness : IValueTaskSource<bool>
{
    // Claimed: the loop does the waiter's I/O for it (a batched receive into its buffer) and wakes it when
    // done; a Close meanwhile (ClaimedClosed) waits for that, so the waiter never leaves while the loop still
    // uses its buffer.
    private const int Idle = 0, Signaled = 1, Waiting = 2, Closed = 3, Claimed = 4, ClaimedClosed = 5;
    private int _state;
    private ManualResetValueTaskSourceCore<bool> _core; // RunContinuationsAsynchronously stays false: run inline

    /// <summary>Forgets an edge seen before the caller looks at the socket itself (called right before the syscall).</summary>
    public void Reset() => Interlocked.CompareExchange(ref _state, Idle, Signaled);

    /// <summary>
    /// Takes a waiting waiter for the loop (only the loop thread, at an edge): it wakes at <see cref="Release"/>, not before.
    /// </summary>
    public bool TryClaim() => Interlocked.CompareExchange(ref _state, Claimed, Waiting) == Waiting;

    /// <summary>Wakes a claimed waiter: with true, or with false when the direction was closed meanwhile.</summary>
    public void Release()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Claimed) == Claimed) _core.SetResult(true);
        else if (Interlocked.CompareExchange(ref _state, Closed, ClaimedClosed) == ClaimedClosed) _core.SetResult(false);
    }

    /// <summary>An edge came that nobody has consumed yet.</summary>
    public bool IsSignaled => Volatile.Read(ref _state) == Signaled;

    /// <summary>An edge from epoll: wakes the waiter, or is remembered for the next wait.</summary>
    public void Set()
    {
        while (true)
        {
            var s = Volatile.Read(ref _state);
            switch (s)
            {
                case Signaled or Closed or Claimed or ClaimedClosed: return;
                case Idle when Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle: return;
                case Waiting when Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting:
                    _core.SetResult(true);
                    return;
            }
        }
    }

    /// <summary>True when the socket may be ready; false once closed. One waiter at a time.</summary>
    public ValueTask<bool> WaitAsync()
    {
        while (true)
        {
            var s = Volatile.Read(ref _state);
            if (s is Closed or ClaimedClosed) return new ValueTask<bool>(false);
            if (s == Signaled)
            {
                if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled) return new ValueTask<bool>(true);
                continue;
            }
            _core.Reset(); // nobody else touches the core until the state says Waiting
            if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle) return new ValueTask<bool>(this, _core.Version);
        }
    }

    /// <summary>Wakes the waiter with false, now and for every later wait.</summary>
    public void Close()
    {
        while (true)
        {
            var s = Volatile.Read(ref _state);
            if (s is Claimed)
            {
                if (Interlocked.CompareExchange(ref _state, ClaimedClosed, Claimed) == Claimed) return; // Release wakes it
                continue;
            }
            if (s is ClaimedClosed or Closed) return;
            if (Interlocked.CompareExchange(ref _state, Closed, s) == s)
            {
                if (s == Waiting) _core.SetResult(false);
                return;
            }
        }
    }

    public bool GetResult(short token) => _core.GetResult(token);
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
