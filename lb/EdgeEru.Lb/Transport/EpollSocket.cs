using System.Buffers;
using System.Net.Sockets;

namespace EdgeEru.Lb.Transport;

/// <summary>Wants to know when a socket's peer has gone.</summary>
internal interface IPeerWatcher
{
    void PeerClosed();
}

/// <summary>
/// A non-blocking TCP socket on an <see cref="EpollLoop"/>. Unlike System.Net.Sockets it does not try a
/// read it knows would find nothing: a read that returned less than asked for drained the socket, so the
/// next one waits for epoll's edge first (one recv per message instead of an EAGAIN recv and another).
/// One reader and one writer at a time; a close may come from any thread.
/// </summary>
internal sealed class EpollSocket : IDisposable
{
    private readonly Socket _socket;
    private readonly SafeSocketHandle _handle;
    private readonly EpollLoop _loop;
    private readonly Readiness _readable = new(), _writable = new();
    private bool _mayHaveData = true; // the reader's: false after a short read or EAGAIN
    private volatile bool _peerClosed; // epoll said RDHUP/HUP/ERR: no edge will come again, so read until recv says 0
    private int _disposed;
    // A reader on the socket's own loop waiting for an edge leaves its buffer here: at the edge the loop takes
    // it (the loop thread's own copy) and receives into it with every other socket's in one io_uring call,
    // and the reader wakes with the count.
    private Memory<byte> _waitBuffer, _loopBuffer;
    private MemoryHandle _loopPin;
    private int _received = NoResult;
    private const int NoResult = int.MinValue;
    // SendSoon on the socket's own loop keeps the bytes in the loop's arena until the end of the turn. What a
    // flush could not send (the peer's window was full) waits in the backlog for room. Any other send goes
    // after both; a failed flush is thrown by the next send.
    private readonly Lock _sendGate = new();
    private int _keptOffset, _keptLength;
    private byte[]? _backlog;
    private int _backlogLength;
    private volatile bool _pending;
    private bool _inFlight; // the loop's io_uring send of the kept bytes is under way (the loop holds the lock)
    private SocketException? _sendFault;

    /// <summary>In the loop's list of sockets to flush at the end of the turn (loop thread only): listed once.</summary>
    internal bool FlushListed { get; set; }

    /// <summary>
    /// Told at once when the peer closes or resets, even while nobody reads (the fast path: its client left mid-request).
    /// </summary>
    public IPeerWatcher? Watcher { get; set; }

    /// <summary>The loop whose thread runs what this socket's readiness wakes.</summary>
    public EpollLoop Loop => _loop;

    /// <summary>The loop's key for this socket (slot and generation).</summary>
    public ulong Token { get; set; }

    public EpollSocket(Socket socket, EpollLoop? loop = null)
    {
        _socket = socket;
        socket.Blocking = false;
        _handle = socket.SafeHandle;
        _loop = loop ?? EpollLoop.Next();
        _loop.Add(this, Fd);
    }


    /// <summary>
    /// Connects without blocking a thread: the loop reports when the handshake is done. Cancelling closes
    /// the socket. Called on a loop, the connection stays on that loop, so a request and the connection it
    /// forwards on run on one thread (no hop between cores per response, as with nginx's workers).
    /// </summary>
    public static async ValueTask<EpollSocket> ConnectAsync(System.Net.IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        EpollSocket? epoll = null;
        try
        {
            epoll = new EpollSocket(socket, EpollLoop.Current);
            try
            {
                socket.Connect(target);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress) { }
            using (cancellationToken.UnsafeRegister(static s => ((EpollSocket)s!).Dispose(), epoll))
            {
                if (!await epoll._writable.WaitAsync()) throw new OperationCanceledException(cancellationToken);
            }
            if (socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error) is int errno and not 0) throw Native.Error(errno);
            return epoll;
        }
        catch
        {
            if (epoll is not null) epoll.Dispose();
            else socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Nothing arrived and nothing is left unread since the last read drained the socket: an idle pooled
    /// connection the workload has not closed (a FIN or stray bytes would have left an edge).
    /// </summary>
    public bool PeerHasClosed => _peerClosed;

    public bool IsQuiet =>
        !_mayHaveData && !_peerClosed && !_readable.IsSignaled && !_pending && _sendFault is null && Volatile.Read(ref _disposed) == 0;
    private int Fd => (int)_handle.DangerousGetHandle();

    internal void OnEvents(uint events)
    {
        // Before waking the reader: an edge consumed by its Reset() must still be seen after its recv.
        if ((events & (Native.EpollRdHup | Native.EpollHup | Native.EpollErr)) != 0)
        {
            _peerClosed = true;
            Watcher?.PeerClosed();
        }
        if ((events & (Native.EpollIn | Native.EpollRdHup | Native.EpollHup | Native.EpollErr)) != 0)
        {
            // A reader waiting with its buffer: the loop receives into it with the turn's others, then wakes it.
            var buffer = _waitBuffer;
            if (!buffer.IsEmpty && _loop.CanReceiveAtEnd && _readable.TryClaim())
            {
                _loopBuffer = buffer;
                _loop.ReceiveAtEnd(this);
            }
            else _readable.Set();
        }
        if ((events & (Native.EpollOut | Native.EpollHup | Native.EpollErr)) != 0)
        {
            if (_pending) _loop.FlushAtEnd(this); // room again for the backlog
            _writable.Set();
        }
    }

    /// <summary>Reads what is there (0: the peer closed). An empty buffer waits until data arrives.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer)
    {
        if (buffer.IsEmpty) return WaitForDataAsync();
        if (_mayHaveData)
        {
            var n = TryReceive(buffer.Span);
            if (n >= 0) return new ValueTask<int>(n);
        }
        return ReceiveWhenReadyAsync(buffer);
    }

    // Pooled: a read that waits for its edge (once per request, typically) takes no new state machine.
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceiveWhenReadyAsync(Memory<byte> buffer)
    {
        // Only a reader on the loop's own thread may leave its buffer to the loop: nothing else can then run
        // between its wait starting and the loop's next turn.
        var onLoop = EpollLoop.Current == _loop;
        while (true)
        {
            if (onLoop) _waitBuffer = buffer;
            var ready = await _readable.WaitAsync();
            _waitBuffer = default;
            if (!ready) throw Aborted();
            var n = _received;
            if (n != NoResult)
            {
                _received = NoResult;
                if (n >= 0) return n;
                throw Native.Error(-n);
            }
            n = TryReceive(buffer.Span);
            if (n >= 0) return n;
        }
    }

    /// <summary>
    /// The loop's receive into the claimed reader's buffer (loop thread): the buffer's address, pinned until
    /// <see cref="Received"/>; false (the reader woken to find out) when the socket has closed.
    /// </summary>
    internal unsafe bool TryStartReceive(out int fd, out nint address, out int length)
    {
        (fd, address, length) = (0, 0, 0);
        var added = false;
        try { _handle.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { }
        if (!added)
        {
            _loopBuffer = default;
            _readable.Release();
            return false;
        }
        _loopPin = _loopBuffer.Pin();
        (fd, address, length) = (Fd, (nint)_loopPin.Pointer, _loopBuffer.Length);
        return true;
    }

    /// <summary>The loop's receive is done (<paramref name="result"/>: bytes, or -errno): the reader wakes with it.</summary>
    internal void Received(int result, int length)
    {
        _loopPin.Dispose();
        _loopBuffer = default;
        _handle.DangerousRelease();
        // EAGAIN (the edge was old news) or a failed ring: the reader tries itself.
        if (result is -11 or EpollLoop.NotDone) result = NoResult;
        else if (result >= 0) Drained(result, length);
        _received = result;
        _readable.Release();
    }

    /// <summary>
    /// After a read of <paramref name="n"/> bytes (-1: none there) into <paramref name="asked"/>: a short read drained the socket
    /// (the next edge says when more came) unless the peer has closed, since the FIN may already be queued
    /// behind the data and no edge will announce it again.
    /// </summary>
    private void Drained(int n, int asked) => _mayHaveData = n == asked || n == 0 || _peerClosed;

    private async ValueTask<int> WaitForDataAsync()
    {
        if (!_mayHaveData && !await _readable.WaitAsync()) throw Aborted();
        _mayHaveData = true;
        return 0;
    }

    private int TryReceive(Span<byte> buffer)
    {
        _readable.Reset(); // an edge after this point is for data this recv may not see
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            var n = Native.Receive(Fd, buffer);
            Drained(n, buffer.Length); // -1 (EAGAIN): drained too
            return n;
        }
        catch (ObjectDisposedException) { throw Aborted(); }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Like <see cref="SendAsync(ReadOnlyMemory{byte})"/>, but on the socket's own loop the bytes are copied
    /// and leave at the end of the loop's turn with every other socket's. Done means kept, not sent: a failure
    /// comes with the next send, and the connection's owner flushes (sends nothing) before it closes the socket.
    /// </summary>
    public ValueTask SendSoonAsync(ReadOnlyMemory<byte> data)
    {
        if (EpollLoop.Current == _loop && !data.IsEmpty)
            lock (_sendGate)
                if (_sendFault is null && _backlogLength == 0 && _loop.Keep(this, data.Span, ref _keptOffset, ref _keptLength))
                {
                    _pending = true;
                    return default;
                }
        return SendAsync(data);
    }

    /// <summary>Writes all of <paramref name="data"/>, waiting for room in the socket buffer when it is full.</summary>
    public ValueTask SendAsync(ReadOnlySequence<byte> data)
    {
        if (_pending || _sendFault is not null) return SendAfterKeptAsync(data);
        while (!data.IsEmpty)
        {
            var n = TrySend(data);
            if (n < 0) return SendWhenReadyAsync(data);
            data = data.Slice(n);
        }
        return default;
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> data) => SendAsync(new ReadOnlySequence<byte>(data));

    private async ValueTask SendWhenReadyAsync(ReadOnlySequence<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (!await _writable.WaitAsync()) throw Aborted();
            int n;
            while (!data.IsEmpty && (n = TrySend(data)) >= 0) data = data.Slice(n);
        }
    }

    private async ValueTask SendAfterKeptAsync(ReadOnlySequence<byte> data)
    {
        while (!FlushKept())
            if (!await _writable.WaitAsync()) throw Aborted();
        SocketException? fault;
        lock (_sendGate) (fault, _sendFault) = (_sendFault, null);
        if (fault is not null) throw fault;
        if (!data.IsEmpty) await SendAsync(data);
    }

    /// <summary>
    /// Sends the backlog and the bytes kept this turn, as far as the socket takes them: true when nothing is
    /// left (or the send failed: the failure is kept for the next send), false when the rest waits for room.
    /// </summary>
    internal bool FlushKept()
    {
        lock (_sendGate)
        {
            if (!_pending) return true;
            if (_inFlight) return false; // only the loop itself, re-entering: its send's completion decides
            try
            {
                if (_backlogLength > 0)
                {
                    var n = Math.Max(0, TrySend(new ReadOnlySequence<byte>(_backlog!, 0, _backlogLength)));
                    _backlog.AsSpan(n, _backlogLength - n).CopyTo(_backlog);
                    _backlogLength -= n;
                    if (_backlogLength > 0)
                    {
                        // Kept bytes behind a backlog (not made so far: SendSoon keeps none then) would lose
                        // their place in the arena at the turn's end: they join the backlog.
                        if (_keptLength > 0) AddToBacklog(_loop.Kept(_keptOffset, _keptLength).Span);
                        _keptLength = 0;
                        return false;
                    }
                }
                if (_keptLength > 0)
                {
                    var kept = _loop.Kept(_keptOffset, _keptLength);
                    _keptLength = 0;
                    var n = Math.Max(0, TrySend(new ReadOnlySequence<byte>(kept)));
                    if (n < kept.Length)
                    {
                        // The peer's window is full: the rest leaves the arena (reused next turn) for the backlog.
                        AddToBacklog(kept.Span[n..]);
                        return false;
                    }
                }
            }
            catch (SocketException e)
            {
                _sendFault = e;
                _keptLength = _backlogLength = 0;
            }
            _pending = false;
            return true;
        }
    }

    /// <summary>
    /// The loop's send of the bytes kept this turn (loop thread), in its io_uring batch: true with the send's
    /// place in the arena, and the socket's send lock held until <see cref="Sent"/>; false when there is
    /// nothing to batch (nothing kept, a backlog to go first, or a closed socket: flushed the plain way).
    /// </summary>
    internal bool TryStartSend(out int fd, out int offset, out int length)
    {
        (fd, offset, length) = (0, 0, 0);
        _sendGate.Enter();
        if (_inFlight)
        {
            _sendGate.Exit();
            return false;
        }
        if (_pending && _backlogLength == 0 && _keptLength > 0)
        {
            var added = false;
            try { _handle.DangerousAddRef(ref added); }
            catch (ObjectDisposedException) { }
            if (added)
            {
                (fd, offset, length) = (Fd, _keptOffset, _keptLength);
                _keptLength = 0;
                _inFlight = true;
                _writable.Reset(); // as before a send of our own: an edge after this is for room this send may not have had
                return true;
            }
        }
        _sendGate.Exit();
        FlushKept();
        return false;
    }

    /// <summary>
    /// The loop's send is done (<paramref name="result"/>: bytes taken, or -errno; <see cref="EpollLoop.NotDone"/>: the ring failed).
    /// </summary>
    internal void Sent(int result, int offset, int length)
    {
        var notSent = result == EpollLoop.NotDone;
        try
        {
            _inFlight = false;
            _handle.DangerousRelease();
            if (result is -11 or EpollLoop.NotDone) result = 0; // no room, or not sent at all: all of it waits
            if (result < 0)
            {
                _sendFault = Native.Error(-result);
                _pending = false;
            }
            else if (result < length)
            {
                // The rest waits for room: the kernel marked the socket short of space, so an EPOLLOUT edge follows.
                AddToBacklog(_loop.Kept(offset + result, length - result).Span);
            }
            else _pending = false;
        }
        finally { _sendGate.Exit(); }
        if (notSent) FlushKept(); // the ring failed: no edge is owed, so the plain way now
    }

    /// <summary>
    /// After the loop sent for the socket: a writer waiting for room behind the kept bytes may go on (its
    /// edge may have been taken by the loop's send). A spare wake costs a writer one look.
    /// </summary>
    internal void WakeWriter() => _writable.Set();

    /// <summary>Bytes the socket did not take: they wait for room, after any that wait already (under the send lock).</summary>
    private void AddToBacklog(ReadOnlySpan<byte> rest)
    {
        if (_backlog is null || _backlog.Length - _backlogLength < rest.Length) Array.Resize(ref _backlog, _backlogLength + rest.Length);
        rest.CopyTo(_backlog.AsSpan(_backlogLength));
        _backlogLength += rest.Length;
    }

    private unsafe int TrySend(in ReadOnlySequence<byte> data)
    {
        _writable.Reset();
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            if (data.IsSingleSegment) return Native.Send(Fd, data.FirstSpan);
            // Up to 16 buffers in one sendmsg; pinned only for the call.
            const int max = 16;
            var iov = stackalloc Native.IoVec[max];
            var handles = new PinnedSegments();
            var count = 0;
            try
            {
                foreach (var segment in data)
                {
                    if (segment.IsEmpty) continue;
                    handles[count] = segment.Pin();
                    iov[count] = new Native.IoVec { Base = (byte*)handles[count].Pointer, Length = (nuint)segment.Length };
                    if (++count == max) break;
                }
                return Native.SendGathered(Fd, iov, count);
            }
            finally
            {
                for (var i = 0; i < count; i++) handles[i].Dispose();
            }
        }
        catch (ObjectDisposedException) { throw Aborted(); }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    /// <summary>Ends both directions (the peer sees FIN; our reader and writer wake); the descriptor stays until Dispose.</summary>
    public void Shutdown()
    {
        try { _socket.Shutdown(SocketShutdown.Both); }
        catch (SocketException) { } // not connected any more
        catch (ObjectDisposedException) { }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _loop.Remove(this, Fd);
        _readable.Close();
        _writable.Close();
        _socket.Dispose(); // the descriptor closes when no call holds it any more
    }

    [System.Runtime.CompilerServices.InlineArray(16)]
    private struct PinnedSegments
    {
        private MemoryHandle _first;
    }

    private static SocketException Aborted() => new((int)SocketError.OperationAborted);
}
