using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Wire;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Server;

/// <summary>
/// DNS over UDP: several receive loops on one socket, each with its own buffers and address, so a
/// query costs a receive, the processor and a send, with no allocation.
/// </summary>
internal sealed class UdpServer(QueryProcessor processor, IOptions<DnsOptions> options, DnsMetrics metrics, ILogger<UdpServer> log) : BackgroundService
{
    private Socket? _socket;

    public IPEndPoint? LocalEndPoint => _socket?.LocalEndPoint as IPEndPoint;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var address = IPAddress.Parse(o.Listen);
        _socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.ReceiveBufferSize = 4 << 20;
        _socket.SendBufferSize = 4 << 20;
        _socket.Bind(new IPEndPoint(address, o.Port));
        log.LogInformation("dns listening on udp {Endpoint}", _socket.LocalEndPoint);
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var loops = options.Value.UdpLoops > 0 ? options.Value.UdpLoops : Environment.ProcessorCount;
        return Task.WhenAll(Enumerable.Range(0, loops).Select(_ => Task.Run(() => LoopAsync(_socket!, stoppingToken), stoppingToken)));
    }

    private async Task LoopAsync(Socket socket, CancellationToken ct)
    {
        // Queries may be large (EDNS); never receive into 512 bytes.
        var rx = GC.AllocateUninitializedArray<byte>(DnsLimits.MaxMessage, pinned: true);
        var tx = GC.AllocateUninitializedArray<byte>(DnsLimits.MaxMessage, pinned: true);
        var from = new SocketAddress(socket.AddressFamily);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var n = await socket.ReceiveFromAsync(rx, SocketFlags.None, from, ct);
                var started = Stopwatch.GetTimestamp();
                var outcome = processor.Process(rx.AsSpan(0, n), tx, tcp: false);
                if (!outcome.Dropped) await socket.SendToAsync(tx.AsMemory(0, outcome.Length), SocketFlags.None, from, ct);
                metrics.Query(false, outcome, Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // ICMP errors from earlier sends surface here; the socket is fine.
                log.LogDebug("udp: {Error}", ex.SocketErrorCode);
            }
        }
    }

    public override void Dispose()
    {
        _socket?.Dispose();
        base.Dispose();
    }
}
