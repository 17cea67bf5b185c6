using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Forwarding;
using EdgeEru.Dns.Wire;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Server;

/// <summary>DNS over TCP (RFC 7766): length-prefixed messages, several per connection, idle timeout, connection cap.</summary>
internal sealed class TcpServer(
    QueryProcessor processor, Forwarder forwarder, IOptions<DnsOptions> options, DnsMetrics metrics, ILogger<TcpServer> log)
    : BackgroundService
{
    private TcpListener? _listener;
    private SemaphoreSlim? _slots;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        _listener = new TcpListener(IPAddress.Parse(o.Listen), o.Port);
        _listener.Start(512);
        _slots = new SemaphoreSlim(o.MaxTcpConnections);
        log.LogInformation("dns listening on tcp {Endpoint}", _listener.LocalEndpoint);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener!.AcceptSocketAsync(stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException ex)
            {
                log.LogWarning("tcp accept: {Error}", ex.SocketErrorCode);
                continue;
            }
            if (!_slots!.Wait(0, CancellationToken.None))
            {
                client.Dispose(); // over the cap: refuse rather than queue (RFC 7766 6.2.2)
                continue;
            }
            _ = ServeAsync(client, stoppingToken);
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken ct)
    {
        client.NoDelay = true;
        var rx = new byte[DnsLimits.MaxMessage];
        var tx = new byte[DnsLimits.MaxMessage + 2];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(options.Value.TcpIdleTimeout);
                if (!await ReadExactlyAsync(client, rx.AsMemory(0, 2), idle.Token)) return;
                var length = BinaryPrimitives.ReadUInt16BigEndian(rx);
                if (length == 0 || !await ReadExactlyAsync(client, rx.AsMemory(0, length), idle.Token)) return;
                var started = Stopwatch.GetTimestamp();
                var outcome = processor.Process(rx.AsSpan(0, length), tx.AsSpan(2), tcp: true);
                if (outcome.NotOurs && forwarder.Enabled && client.RemoteEndPoint is IPEndPoint peer && forwarder.Allows(peer.Address))
                {
                    var answer = new byte[DnsLimits.MaxMessage];
                    var n = await forwarder.ForwardAsync(rx[..length], answer, DnsLimits.MaxMessage, ct);
                    BinaryPrimitives.WriteUInt16BigEndian(tx, (ushort)n);
                    answer.AsSpan(0, n).CopyTo(tx.AsSpan(2));
                    await client.SendAsync(tx.AsMemory(0, n + 2), SocketFlags.None, ct);
                    continue;
                }
                if (!outcome.Dropped)
                {
                    BinaryPrimitives.WriteUInt16BigEndian(tx, (ushort)outcome.Length);
                    await client.SendAsync(tx.AsMemory(0, outcome.Length + 2), SocketFlags.None, ct);
                }
                metrics.Query(true, outcome);
                metrics.Latency(Stopwatch.GetElapsedTime(started).TotalSeconds);
                if (outcome.Dropped) return;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Idle, reset by the client, or shutting down.
        }
        finally
        {
            client.Dispose();
            _slots!.Release();
        }
    }

    private static async Task<bool> ReadExactlyAsync(Socket s, Memory<byte> buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await s.ReceiveAsync(buffer[read..], SocketFlags.None, ct);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }

    public override void Dispose()
    {
        _listener?.Stop();
        _slots?.Dispose();
        base.Dispose();
    }
}
