using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// An accepted connection as Kestrel sees it: bytes from the socket go into the input pipe, bytes Kestrel
/// writes go out, both inline (the read that completes a request runs it on the event loop; Kestrel's flush
/// sends on the thread that flushed).
/// </summary>
internal sealed class EpollConnection : ConnectionContext, IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature,
    IConnectionLifetimeFeature, IMemoryPoolFeature, IConnectionEndPointFeature
{
    private static long _ids;
    /// <summary>Counts the connections an accept hook holds too (the HTTP/1.1 fast path's).</summary>
    internal static readonly Prometheus.Gauge Open = Prometheus.Metrics.CreateGauge("eru_lb_epoll_connections",
        "Client connections open on the epoll transport (Lb:Transport epoll), Kestrel's and the HTTP/1.1 fast path's.");
    private readonly EpollSocket _socket;
    private readonly Pipe _input, _output;
    private readonly CancellationTokenSource _closed = new();
    private readonly FeatureCollection _features = new();
    private Task _receiving = Task.CompletedTask, _sending = Task.CompletedTask;
    private volatile ConnectionAbortedException? _abortReason;
    private IDictionary<object, object?>? _items;
    private ReadOnlyMemory<byte> _already;

    public EpollConnection(Socket socket, MemoryPool<byte> pool)
        : this(new EpollSocket(socket), pool, socket.LocalEndPoint, socket.RemoteEndPoint, default) { }

    /// <summary>A connection an accept hook hands over, with the bytes it read and did not answer.</summary>
    public EpollConnection(EpollSocket socket, MemoryPool<byte> pool, EndPoint? local, EndPoint? remote, ReadOnlyMemory<byte> already)
    {
        _socket = socket;
        _already = already;
        MemoryPool = pool;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        ConnectionId = "E" + Interlocked.Increment(ref _ids).ToString("X", System.Globalization.CultureInfo.InvariantCulture);
        // Kestrel's limits: 1 MB of request data buffered, 64 KB of response data before a flush waits.
        _input = new Pipe(new PipeOptions(pool, PipeScheduler.Inline, PipeScheduler.Inline, 1024 * 1024, 512 * 1024,
            useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(pool, PipeScheduler.Inline, PipeScheduler.Inline, 64 * 1024, 32 * 1024,
            useSynchronizationContext: false));
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IMemoryPoolFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
    }

    public void Start()
    {
        Open.Inc();

        _receiving = ReceiveAsync();
        _sending = SendAsync();
    }

    public override string ConnectionId { get; set; }
    public override IFeatureCollection Features => _features;
    public override IDictionary<object, object?> Items { get => _items ??= new ConnectionItems(); set => _items = value; }
    public override IDuplexPipe Transport { get; set; }
    public MemoryPool<byte> MemoryPool { get; }
    public override CancellationToken ConnectionClosed { get => _closed.Token; set { } }
    public override EndPoint? LocalEndPoint { get; set; }
    public override EndPoint? RemoteEndPoint { get; set; }

    private async Task ReceiveAsync()
    {
        Exception? error = null;
        var writer = _input.Writer;
        try
        {
            if (!_already.IsEmpty)
            {
                // What the hook read and handed over: Kestrel reads it first.
                writer.Write(_already.Span);
                _already = default;
                if ((await writer.FlushAsync()).IsCompleted) return;
            }
            while (true)
            {
                var n = await _socket.ReceiveAsync(writer.GetMemory(4096));
                if (n == 0) break; // FIN
                writer.Advance(n);
                var flush = await writer.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled) break;
            }
        }
        catch (SocketException e) when (_abortReason is not null || e.SocketErrorCode == SocketError.OperationAborted)
        {
            error = _abortReason ?? new ConnectionAbortedException("the connection was aborted", e);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
        {
            error = new ConnectionResetException(e.Message, e);
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            await writer.CompleteAsync(_abortReason ?? error);
            // The peer is gone (or we are): requests on this connection see RequestAborted. Not inline: the
            // token's callbacks run app code that must not run inside this loop's receive path.
            ThreadPool.UnsafeQueueUserWorkItem(static c => c.CancelClosed(), this, preferLocal: false);
        }
    }

    private void CancelClosed()
    {
        try { _closed.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    private async Task SendAsync()
    {
        Exception? error = null;
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                if (result.IsCanceled) break;
                var buffer = result.Buffer;
                if (!buffer.IsEmpty) await _socket.SendAsync(buffer);
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (Exception e)
        {
            error = e is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.Shutdown }
                ? new ConnectionResetException(e.Message, e)
                : e;
        }
        finally
        {
            await reader.CompleteAsync(error);
            // Kestrel is done with the connection (or it broke): FIN to the peer, which also ends our receive side.
            _socket.Shutdown();
        }
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason = abortReason;
        _output.Reader.CancelPendingRead();
        _socket.Shutdown();
    }

    public override async ValueTask DisposeAsync()
    {
        _output.Writer.Complete();
        _input.Reader.Complete();
        await _sending;
        await _receiving;
        _socket.Dispose();
        _closed.Dispose();
        Open.Dec();
        await base.DisposeAsync();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
