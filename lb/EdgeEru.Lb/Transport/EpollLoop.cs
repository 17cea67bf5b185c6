namespace EdgeEru.Lb.Transport;

/// <summary>
/// An event loop: one thread waiting in epoll_wait for the sockets registered with it (edge-triggered, for
/// reading and writing at once, so a socket is registered once for its life) and running what their
/// readiness wakes. One loop per core, like nginx's workers; sockets are spread over them in turn.
/// </summary>
internal sealed unsafe class EpollLoop
{
    private static readonly Lazy<EpollLoop[]> All = new(() => Enumerable.Range(0, Count).Select(i => new EpollLoop(i)).ToArray());
    private static uint _next;
    [ThreadStatic] private static EpollLoop? _current;
    private static readonly Prometheus.Counter LoopFaults = Prometheus.Metrics.CreateCounter("eru_lb_epoll_loop_faults_total",
        "Exceptions that escaped to an epoll event loop (a bug: the loop goes on).");

    private readonly int _epfd;
    private readonly Lock _gate = new();
    private EpollSocket?[] _slots = new EpollSocket?[64];
    private uint[] _generations = new uint[64];
    private readonly Stack<int> _free = new();
    private int _used;

    /// <summary>The loop for the next socket (round robin).</summary>
    public static EpollLoop Next()
    {
        var loops = All.Value;
        return loops[Interlocked.Increment(ref _next) % (uint)loops.Length];
    }

    /// <summary>How many loops there are (one per core; known before they start).</summary>
    public static int Count => Environment.ProcessorCount;

    /// <summary>The loop whose thread is running the caller, or null off the loops.</summary>
    public static EpollLoop? Current => _current;

    /// <summary>This loop's place among <see cref="Count"/>.</summary>
    public int Index { get; }

    private EpollLoop(int index)
    {
        Index = index;
        _epfd = Native.EpollCreate(Native.EpollCloExec);
        if (_epfd < 0) throw Native.Error(System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        new Thread(Run) { IsBackground = true, Name = $"eru-lb epoll {index}" }.Start();
    }

    /// <summary>Adds a socket; its events go to <see cref="EpollSocket.OnEvents"/> until <see cref="Remove"/>.</summary>
    public ulong Add(EpollSocket socket, int fd)
    {
        ulong token;
        lock (_gate)
        {
            if (!_free.TryPop(out var slot))
            {
                slot = _used++;
                if (slot == _slots.Length)
                {
                    Array.Resize(ref _generations, slot * 2);
                    var grown = new EpollSocket?[slot * 2];
                    Array.Copy(_slots, grown, slot);
                    Volatile.Write(ref _slots, grown);
                }
            }
            // The generation tells a stale event (of the socket that had this slot before) from a current one.
            token = (ulong)++_generations[slot] << 32 | (uint)slot;
            socket.Token = token;
            Volatile.Write(ref _slots[slot], socket);
        }
        var ev = new Native.EpollEvent { Events = Native.EpollIn | Native.EpollOut | Native.EpollRdHup | Native.EpollEt, Data = token };
        if (Native.EpollCtl(_epfd, Native.EpollCtlAdd, fd, &ev) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            Remove(socket, -1);
            throw Native.Error(errno);
        }
        return token;
    }

    /// <summary>Stops events of a socket (before its descriptor is closed; <paramref name="fd"/> -1: not added).</summary>
    public void Remove(EpollSocket socket, int fd)
    {
        if (fd >= 0) Native.EpollCtl(_epfd, Native.EpollCtlDel, fd, null);
        var slot = (int)(uint)socket.Token;
        lock (_gate)
        {
            if (!ReferenceEquals(_slots[slot], socket)) return;
            _slots[slot] = null;
            _free.Push(slot);
        }
    }

    private void Run()
    {
        const int max = 256;
        _current = this;
        var events = stackalloc Native.EpollEvent[max];
        while (true)
        {
            var n = Native.EpollWait(_epfd, events, max, -1);
            if (n < 0) continue; // EINTR
            // Read after the wait: a socket added before its first event is in this array.
            var slots = Volatile.Read(ref _slots);
            for (var i = 0; i < n; i++)
            {
                var token = events[i].Data;
                var slot = (int)(uint)token;
                if (slot < slots.Length && Volatile.Read(ref slots[slot]) is { } socket && socket.Token == token)
                {
                    // What runs here is async code that keeps its exceptions in its tasks; anything else that
                    // escapes must not end the loop of every other socket on it.
                    try { socket.OnEvents(events[i].Events); }
                    catch (Exception e) { LoopFaults.Inc(); Console.Error.WriteLine($"eru-lb: epoll loop: {e}"); }
                }
            }
        }
    }
}
