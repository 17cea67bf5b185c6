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

    /// <summary>Told at once when the peer closes or resets, even while nobody reads (the lane: its client left mid-request).</summary>
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

    public bool IsQuiet => !_mayHaveData && !_peerClosed && !_readable.IsSignaled && Volatile.Read(ref _disposed) == 0;
    private int Fd => (int)_handle.DangerousGetHandle();

    internal void OnEvents(uint events)
    {
        // Before waking the reader: an edge consumed by its Reset() must still be seen after its recv.
        if ((events & (Native.EpollRdHup | Native.EpollHup | Native.EpollErr)) != 0)
        {
            _peerClosed = true;
            Watcher?.PeerClosed();
        }
        if ((events & (Native.EpollIn | Native.EpollRdHup | Native.EpollHup | Native.EpollErr)) != 0) _readable.Set();
        if ((events & (Native.EpollOut | Native.EpollHup | Native.EpollErr)) != 0) _writable.Set();
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
        while (true)
        {
            if (!await _readable.WaitAsync()) throw Aborted();
            var n = TryReceive(buffer.Span);
            if (n >= 0) return n;
        }
    }

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
            // A short read drained the socket (the next edge says when more came) unless the peer has closed:
            // the FIN may already be queued behind the data, and no edge will announce it again.
            _mayHaveData = n == buffer.Length || n == 0 || _peerClosed;
            return n;
        }
        catch (ObjectDisposedException) { throw Aborted(); }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    /// <summary>Writes all of <paramref name="data"/>, waiting for room in the socket buffer when it is full.</summary>
    public ValueTask SendAsync(ReadOnlySequence<byte> data)
    {
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
