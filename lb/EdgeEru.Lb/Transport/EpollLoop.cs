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
    // Bytes sockets were given with SendSoon during this turn, and the sockets with something to send at its end.
    private readonly byte[] _arena = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
    private int _arenaUsed;
    private readonly List<EpollSocket> _flushAtEnd = [], _flushing = [];
    // The turn's receives and sends go to the kernel in one io_uring call each (null: one call per socket).
    private Ring? _ring;
    private readonly List<EpollSocket> _receiveAtEnd = [];
    // A batch's operations (by user data) and results; receives and sends apart, as sends may go out while
    // the receives' readers are being woken (when a turn's receives fill the ring).
    private readonly Batch _receives = new(), _sends = new();

    private sealed class Batch
    {
        public readonly List<(EpollSocket Socket, int Offset, int Length)> Ops = [];
        public int[] Results = [];
        public Action<ulong, int>? Complete;
    }
    private static readonly Prometheus.Counter RingOps = Prometheus.Metrics.CreateCounter("eru_lb_io_uring_operations_total",
        "Receives and sends the event loops made in io_uring batches (one system call per batch).", "op");
    private static readonly Prometheus.Counter RingBatches = Prometheus.Metrics.CreateCounter("eru_lb_io_uring_batches_total",
        "io_uring batches the event loops submitted.", "op");

    /// <summary>A result for an operation of a batch whose submission failed.</summary>
    internal const int NotDone = int.MinValue + 1;

    /// <summary>Whether the loops batch their receives and sends with io_uring (Lb:IoUring; read when the loops start).</summary>
    public static bool UseRing { get; set; } = true;

    /// <summary>
    /// How many times an idle loop looks for events again, yielding its core in between, before it blocks
    /// (Lb:EpollSpin; read when the loops start).
    /// </summary>
    public static int SpinBeforeBlocking { get; set; } = 20;

    /// <summary>Why a loop makes one call per socket although <see cref="UseRing"/> (null: it batches, or was not asked to).</summary>
    public static string? RingUnavailable { get; private set; }

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

    /// <summary>
    /// Keeps <paramref name="data"/> for the end of this turn (loop thread only), after what the socket kept
    /// before in it (<paramref name="offset"/>, <paramref name="length"/>); false when it cannot (no room, or
    /// the socket's earlier bytes are not the last ones kept): the caller sends them first.
    /// </summary>
    internal bool Keep(EpollSocket socket, ReadOnlySpan<byte> data, ref int offset, ref int length)
    {
        if (length > 0 && offset + length != _arenaUsed) return false;
        if (data.Length > _arena.Length - _arenaUsed) return false;
        data.CopyTo(_arena.AsSpan(_arenaUsed));
        if (length == 0)
        {
            offset = _arenaUsed;
            FlushAtEnd(socket);
        }
        length += data.Length;
        _arenaUsed += data.Length;
        return true;
    }

    /// <summary>Bytes kept for this turn's end.</summary>
    internal ReadOnlyMemory<byte> Kept(int offset, int length) => _arena.AsMemory(offset, length);

    /// <summary>The socket has bytes to send at the end of this turn (loop thread only).</summary>
    internal void FlushAtEnd(EpollSocket socket)
    {
        if (socket.FlushListed) return;
        socket.FlushListed = true;
        _flushAtEnd.Add(socket);
    }

    /// <summary>Whether this loop batches receives (it has a ring).</summary>
    internal bool CanReceiveAtEnd => _ring is not null;

    /// <summary>The socket's claimed reader waits with its buffer: the loop receives into it at the end of the turn.</summary>
    internal void ReceiveAtEnd(EpollSocket socket) => _receiveAtEnd.Add(socket);

    private unsafe void ReceiveBatch()
    {
        foreach (var socket in _receiveAtEnd)
        {
            if (!socket.TryStartReceive(out var fd, out var address, out var length)) continue; // closed: its reader was woken
            var sqe = NextEntry(_receives);
            if (sqe is null)
            {
                socket.Received(NotDone, length); // the ring failed: the reader receives itself
                continue;
            }
            *sqe = new Ring.Sqe
            {
                Opcode = Ring.OpRecv, Fd = fd, Addr = (ulong)address, Len = (uint)length, MsgFlags = Ring.MsgDontWait,
                UserData = (ulong)_receives.Ops.Count,
            };
            _receives.Ops.Add((socket, 0, length));
        }
        CompleteBatch(_receives);
    }

    /// <summary>
    /// Sends what the turn kept (and backlogs that have room again), then wakes the sockets' writers; what
    /// they send in turn is flushed too, so nothing kept waits for another turn.
    /// </summary>
    private void Flush()
    {
        while (_flushAtEnd.Count > 0)
        {
            _flushing.AddRange(_flushAtEnd);
            _flushAtEnd.Clear();
            try
            {
                foreach (var socket in _flushing) socket.FlushListed = false;
                if (_ring is null)
                    foreach (var socket in _flushing) socket.FlushKept();
                else SendBatch();
            }
            finally { _arenaUsed = 0; }
            foreach (var socket in _flushing)
                try { socket.WakeWriter(); }
                catch (Exception e) { Fault(e); }
            _flushing.Clear();
        }
    }

    private unsafe void SendBatch()
    {
        foreach (var socket in _flushing)
        {
            if (!socket.TryStartSend(out var fd, out var offset, out var length)) continue;
            var sqe = NextEntry(_sends);
            if (sqe is null)
            {
                socket.Sent(NotDone, offset, length); // the ring failed: sent the plain way
                continue;
            }
            var address = System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(_arena, offset);
            *sqe = new Ring.Sqe
            {
                Opcode = Ring.OpSend, Fd = fd, Addr = (ulong)address, Len = (uint)length, MsgFlags = Ring.MsgDontWait | Ring.MsgNoSignal,
                UserData = (ulong)_sends.Ops.Count,
            };
            _sends.Ops.Add((socket, offset, length));
        }
        CompleteBatch(_sends);
    }

    /// <summary>An entry for the batch; when the ring is full the batch so far goes first. Null: the ring has failed.</summary>
    private Ring.Sqe* NextEntry(Batch batch)
    {
        if (_ring is null) return null;
        var sqe = _ring.Next();
        if (sqe != null) return sqe;
        CompleteBatch(batch);
        return _ring is null ? null : _ring.Next();
    }

    /// <summary>Submits the queued operations, waits for them (they do not block), and hands each socket its result.</summary>
    private void CompleteBatch(Batch batch)
    {
        var ops = batch.Ops;
        if (ops.Count == 0) return;
        var receive = batch == _receives;
        Array.Fill(batch.Results, NotDone, 0, ops.Count);
        try { _ring!.SubmitAndWait(batch.Complete!); }
        catch (Exception e)
        {
            // Not expected; the loop goes on one call per socket (every operation of the batch is redone that way).
            LoopFaults.Inc();
            Console.Error.WriteLine($"eru-lb: epoll loop {Index}: io_uring failed, going on without it: {e.Message}");
            RingUnavailable = e.Message;
            _ring = null;
        }
        var op = receive ? "receive" : "send";
        RingOps.WithLabels(op).Inc(ops.Count);
        RingBatches.WithLabels(op).Inc();
        for (var i = 0; i < ops.Count; i++)
        {
            var (socket, offset, length) = ops[i];
            // A receive wakes its reader, whose request runs here, as at an edge.
            try
            {
                if (receive) socket.Received(batch.Results[i], length);
                else socket.Sent(batch.Results[i], offset, length);
            }
            catch (Exception e) { Fault(e); }
        }
        ops.Clear();
    }

    /// <summary>
    /// An exception that reached the loop (a bug: what runs on it is async code that keeps its exceptions in
    /// its tasks). It is counted and logged, and the loop goes on for every other socket on it.
    /// </summary>
    private static void Fault(Exception e)
    {
        LoopFaults.Inc();
        Console.Error.WriteLine($"eru-lb: epoll loop: {e}");
    }

    private void Run()
    {
        const int max = 256;
        _current = this;
        if (UseRing)
        {
            _ring = Ring.TryCreate(max, out var why);
            if (_ring is null)
            {
                RingUnavailable = why;
                Console.Error.WriteLine($"eru-lb: epoll loop {Index}: no io_uring ({why}); one system call per socket");
            }
            foreach (var batch in new[] { _receives, _sends })
            {
                batch.Results = new int[_ring?.Capacity ?? 0];
                batch.Complete = (op, result) => batch.Results[op] = result;
            }
        }
        var events = stackalloc Native.EpollEvent[max];
        while (true)
        {
            // Under load the next events are a few microseconds away: looking again (and giving the core to
            // whoever else is ready meanwhile) costs less than a sleep and a wakeup, and answers sooner.
            var n = 0;
            for (var spin = 0; spin < SpinBeforeBlocking && (n = Native.EpollWait(_epfd, events, max, 0)) == 0; spin++) Thread.Yield();
            if (n == 0) n = Native.EpollWait(_epfd, events, max, -1);
            if (n < 0) continue; // EINTR
            // Read after the wait: a socket added before its first event is in this array.
            var slots = Volatile.Read(ref _slots);
            for (var i = 0; i < n; i++)
            {
                var token = events[i].Data;
                var slot = (int)(uint)token;
                if (slot < slots.Length && Volatile.Read(ref slots[slot]) is { } socket && socket.Token == token)
                {
                    try { socket.OnEvents(events[i].Events); }
                    catch (Exception e) { Fault(e); }
                }
            }
            try
            {
                // The readers that waited get their bytes in one call, then run (and what they answer is kept).
                if (_receiveAtEnd.Count > 0)
                    try { ReceiveBatch(); }
                    finally { _receiveAtEnd.Clear(); }
                // What the turn's work sent with SendSoon leaves now, together: each peer is woken once with all
                // of its bytes, after every socket that was ready has been served.
                Flush();
            }
            catch (Exception e) { Fault(e); }
        }
    }
}
