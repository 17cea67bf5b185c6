using System.Buffers;
using System.Net.Sockets;

namespace EdgeEru.Lb.Transport;

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
    private int _disposed;

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

    public Socket Socket => _socket;
    private int Fd => (int)_handle.DangerousGetHandle();

    internal void OnEvents(uint events)
    {
        if ((events & (Native.EpollIn | Native.EpollRdHup | Native.EpollHup | Native.EpollErr)) != 0) _readable.Set();
        if ((events & (Native.EpollOut | Native.EpollHup | Native.EpollErr)) != 0) _writable.Set();
    }

    /// <summary>Waits until the socket can be written to (a non-blocking connect has finished); false once closed.</summary>
    public ValueTask<bool> WhenWritableAsync() => _writable.WaitAsync();

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
            _mayHaveData = n == buffer.Length || n == 0; // the end of the stream stays readable
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
