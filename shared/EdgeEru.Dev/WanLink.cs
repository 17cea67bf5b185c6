using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace EdgeEru.Dev;

/// <summary>
/// A WAN link for tests and benchmarks where the kernel has no <c>netem</c> qdisc (CONFIG_NET_SCH_NETEM off, as
/// here): a TCP relay from <see cref="EndPoint"/> to a target that holds every chunk for its delay in each
/// direction, keeping order and not limiting throughput (chunks in flight overlap), and that can be cut
/// (a partition: open connections reset, new ones refused until <see cref="Heal"/>).
/// </summary>
public sealed class WanLink : IDisposable, IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly TimeSpan _delay;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _open = [];
    private volatile bool _cut;
    private readonly Task _accepting;

    public WanLink(IPEndPoint listen, IPEndPoint target, TimeSpan delay)
    {
        _target = target;
        _delay = delay;
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(listen);
        _listener.Listen(512);
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Cuts the link: open connections are reset, new ones are closed at once.</summary>
    public void Cut()
    {
        _cut = true;
        lock (_open)
        {
            foreach (var s in _open)
            {
                s.LingerState = new LingerOption(true, 0);
                s.Dispose();
            }
            _open.Clear();
        }
    }

    public void Heal() => _cut = false;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            if (_cut)
            {
                client.LingerState = new LingerOption(true, 0);
                client.Dispose();
                continue;
            }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using var server = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        using (client)
        {
            lock (_open)
            {
                _open.Add(client);
                _open.Add(server);
            }
            try
            {
                await Task.Delay(_delay, _stop.Token); // the SYN crosses the link too
                await server.ConnectAsync(_target, _stop.Token);
                await Task.WhenAll(PumpAsync(client, server), PumpAsync(server, client));
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The peer went, the link was cut, or the relay stops.
            }
            finally
            {
                lock (_open)
                {
                    _open.Remove(client);
                    _open.Remove(server);
                }
            }
        }
    }

    /// <summary>One direction: each chunk read is written <see cref="_delay"/> after it arrived, in order.</summary>
    private async Task PumpAsync(Socket from, Socket to)
    {
        var chunks = Channel.CreateUnbounded<(long Due, byte[] Data)>(
            new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writer = Task.Run(async () =>
        {
            await foreach (var (due, data) in chunks.Reader.ReadAllAsync(_stop.Token))
            {
                var wait = TimeSpan.FromTicks(due - DateTime.UtcNow.Ticks);
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _stop.Token);
                if (data.Length == 0)
                {
                    to.Shutdown(SocketShutdown.Send); // the other side's FIN, delayed like its data
                    return;
                }
                await to.SendAsync(data, SocketFlags.None, _stop.Token);
            }
        });
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                chunks.Writer.TryWrite((DateTime.UtcNow.Ticks + _delay.Ticks, n == 0 ? [] : buffer[..n]));
                if (n == 0) break;
            }
        }
        finally
        {
            chunks.Writer.TryComplete();
        }
        await writer;
    }

    public async ValueTask DisposeAsync()
    {
        Dispose();
        await _accepting;
    }

    /// <summary>Stops accepting and resets every relayed connection (once; later calls do nothing).</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _listener.Dispose();
        Cut();
    }
}
