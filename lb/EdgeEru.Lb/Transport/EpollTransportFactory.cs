using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// Kestrel's transport for TCP endpoints on Linux: accepted connections live on the <see cref="EpollLoop"/>s.
/// HTTP, TLS and HTTP/2 stay Kestrel's; only how bytes reach the socket changes. On the ports an
/// <see cref="IAcceptHook"/> takes (the HTTP/1.1 fast path's), a connection starts there and reaches Kestrel
/// only when the hook hands it over.
/// </summary>
internal sealed class EpollTransportFactory(IMemoryPoolFactory<byte> pools, IEnumerable<IAcceptHook> hooks)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var ip = endpoint as IPEndPoint ?? throw new NotSupportedException($"the epoll transport binds IP endpoints, not {endpoint}");
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (ip.Address.Equals(IPAddress.IPv6Any)) socket.DualMode = true;
            socket.Bind(ip);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new AddressInUseException(e.Message, e);
        }
        socket.Listen(512);
        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        var listener = new Listener(socket, pools.Create(), hooks.FirstOrDefault(h => h.Takes(port)));
        return ValueTask.FromResult<IConnectionListener>(listener);
    }

    private sealed class Listener : IConnectionListener
    {
        private readonly Socket _socket;
        private readonly MemoryPool<byte> _pool;
        // With a hook: the connections it hands over, for Kestrel's next AcceptAsync.
        private readonly System.Threading.Channels.Channel<ConnectionContext>? _handedOver;
        private readonly HandOver? _handOver;

        public Listener(Socket socket, MemoryPool<byte> pool, IAcceptHook? hook)
        {
            _socket = socket;
            _pool = pool;
            EndPoint = socket.LocalEndPoint!;
            if (hook is null) return;
            _handedOver = System.Threading.Channels.Channel.CreateUnbounded<ConnectionContext>(
                new() { SingleReader = false, SingleWriter = false });
            _handOver = HandOver;
            _ = AcceptIntoHookAsync(hook);
        }

        public EndPoint EndPoint { get; }

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            if (_handedOver is not null)
            {
                try
                {
                    return await _handedOver.Reader.ReadAsync(cancellationToken);
                }
                catch (System.Threading.Channels.ChannelClosedException) { return null; } // unbound
            }
            while (await NextAsync(cancellationToken) is { } accepted)
            {
                try
                {
                    var connection = new EpollConnection(accepted, _pool);
                    connection.Start();
                    return connection;
                }
                catch (SocketException)
                {
                    accepted.Dispose();
                }
            }
            return null;
        }

        /// <summary>Accepts for the hook until unbound: each connection starts there.</summary>
        private async Task AcceptIntoHookAsync(IAcceptHook hook)
        {
            while (await NextAsync(default) is { } accepted)
            {
                try
                {
                    hook.Accept(accepted, _handOver!);
                }
                catch (Exception)
                {
                    // That connection is lost; the listener must not be (Kestrel would wait on it forever).
                    accepted.Dispose();
                }
            }
            _handedOver!.Writer.TryComplete();
        }

        /// <summary>The next client (NoDelay set), or null once the listener is unbound.</summary>
        private async ValueTask<Socket?> NextAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await _socket.AcceptAsync(cancellationToken);
                }
                catch (ObjectDisposedException) { return null; }                                        // unbound
                catch (SocketException e) when (e.SocketErrorCode == SocketError.OperationAborted) { return null; }
                catch (SocketException) { continue; }                                                  // that client gave up
                try
                {
                    accepted.NoDelay = true;
                    return accepted;
                }
                catch (SocketException)
                {
                    accepted.Dispose();
                }
            }
        }

        /// <summary>The hook gives a connection (and the bytes it read) to Kestrel.</summary>
        private void HandOver(EpollSocket socket, EndPoint? local, EndPoint? remote, ReadOnlyMemory<byte> already)
        {
            var connection = new EpollConnection(socket, _pool, local, remote, already);
            connection.Start();
            if (!_handedOver!.Writer.TryWrite(connection)) _ = connection.DisposeAsync().AsTask(); // unbound meanwhile
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _socket.Dispose();
            return default;
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            _pool.Dispose();
            return default;
        }
    }
}
