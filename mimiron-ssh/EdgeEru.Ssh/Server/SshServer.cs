using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeEru.Ssh.Server;

/// <summary>Accepts TCP connections and runs each as an SSH server connection until stopped.</summary>
public sealed class SshServer : IAsyncDisposable
{
    private readonly SshServerOptions _options;
    private readonly SshServerHandler _handler;
    private readonly ILogger _log;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<Task> _connections = [];
    private long _nextId;
    private Task? _acceptLoop;

    public SshServer(IPEndPoint endpoint, SshServerOptions options, SshServerHandler handler, ILogger? log = null)
    {
        if (options.HostKeys.Count == 0) throw new ArgumentException("an SSH server needs at least one host key", nameof(options));
        _options = options;
        _handler = handler;
        _log = log ?? NullLogger.Instance;
        _listener = new TcpListener(endpoint);
        // "::" takes both families: IPv4 clients arrive on the same socket as ::ffff:a.b.c.d (made plain on accept).
        if (endpoint.Address.Equals(IPAddress.IPv6Any)) _listener.Server.DualMode = true;
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections now open.</summary>
    public int ConnectionCount
    {
        get { lock (_connections) return _connections.Count; }
    }

    public void Start()
    {
        _listener.Start(128);
        _acceptLoop = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e)
            {
                _log.LogWarning("accept failed: {Error}", e.Message);
                continue;
            }
            socket.NoDelay = true;
            var id = Interlocked.Increment(ref _nextId);
            var remote = socket.RemoteEndPoint is IPEndPoint { Address.IsIPv4MappedToIPv6: true } mapped
                ? new IPEndPoint(mapped.Address.MapToIPv4(), mapped.Port) // the audit names an IPv4 client as such
                : socket.RemoteEndPoint;
            var connection = new SshServerConnection(new NetworkStream(socket, ownsSocket: true), remote, id, _options,
                _handler, _log);
            Task task = null!;
            task = Task.Run(async () =>
            {
                try
                {
                    await using (connection) await connection.RunAsync(_stop.Token);
                }
                catch (Exception e)
                {
                    _log.LogError(e, "connection {Id} failed", id);
                }
                finally
                {
                    lock (_connections) _connections.Remove(task!);
                }
            });
            lock (_connections)
                if (!task.IsCompleted) _connections.Add(task);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        if (_acceptLoop is not null) await _acceptLoop;
        Task[] open;
        lock (_connections) open = [.. _connections];
        await Task.WhenAll(open);
        _stop.Dispose();
    }
}
