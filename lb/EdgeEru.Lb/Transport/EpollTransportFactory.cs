using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// Kestrel's transport for TCP endpoints on Linux: accepted connections live on the <see cref="EpollLoop"/>s.
/// HTTP, TLS and HTTP/2 stay Kestrel's; only how bytes reach the socket changes.
/// </summary>
internal sealed class EpollTransportFactory(IMemoryPoolFactory<byte> pools) : IConnectionListenerFactory, IConnectionListenerFactorySelector
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
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, pools.Create()));
    }

    private sealed class Listener(Socket socket, MemoryPool<byte> pool) : IConnectionListener
    {
        public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await socket.AcceptAsync(cancellationToken);
                }
                catch (ObjectDisposedException) { return null; }                                        // unbound
                catch (SocketException e) when (e.SocketErrorCode == SocketError.OperationAborted) { return null; }
                catch (SocketException) { continue; }                                                  // that client gave up
                try
                {
                    accepted.NoDelay = true;
                    var connection = new EpollConnection(accepted, pool);
                    connection.Start();
                    return connection;
                }
                catch (SocketException)
                {
                    accepted.Dispose();
                }
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            socket.Dispose();
            return default;
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            pool.Dispose();
            return default;
        }
    }
}
