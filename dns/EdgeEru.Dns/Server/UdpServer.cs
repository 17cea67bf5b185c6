using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Forwarding;
using EdgeEru.Dns.Wire;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Server;

/// <summary>
/// DNS over UDP. One socket per loop on the same port (SO_REUSEPORT: the kernel spreads clients over
/// them), each served by a dedicated thread with blocking receive/send into its own buffers: a query
/// costs two system calls and the processor, with no allocation and no thread-pool hop.
/// </summary>
internal sealed class UdpServer(
    QueryProcessor processor, Forwarder forwarder, IOptions<DnsOptions> options, DnsMetrics metrics, ILogger<UdpServer> log)
    : IHostedService, IDisposable
{
    private const int SolSocket = 1, SoReusePort = 15;
    private readonly List<Socket> _sockets = [];
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var address = IPAddress.Parse(o.Listen);
        var loops = o.UdpLoops > 0 ? o.UdpLoops : Environment.ProcessorCount;
        var port = o.Port;
        for (var i = 0; i < loops; i++)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
            socket.ReceiveBufferSize = 4 << 20;
            socket.ReceiveTimeout = 500; // blocking receives wake up now and then to notice a stop
            socket.SendBufferSize = 4 << 20;
            socket.Bind(new IPEndPoint(address, port));
            port = ((IPEndPoint)socket.LocalEndPoint!).Port; // a port of 0 picks one; the other loops join it
            _sockets.Add(socket);
            var thread = new Thread(() => Loop(socket)) { IsBackground = true, Name = $"dns-udp-{i}" };
            _threads.Add(thread);
        }
        foreach (var t in _threads) t.Start();
        log.LogInformation("dns listening on udp {Address}:{Port} with {Loops} loops", address, port, loops);
        return Task.CompletedTask;
    }

    private void Loop(Socket socket)
    {
        if (OperatingSystem.IsLinux() && Environment.Is64BitProcess && BatchLoop(socket)) return;
        PortableLoop(socket);
    }

    /// <summary>Many datagrams per system call (recvmmsg/sendmmsg); false if the kernel lacks them.</summary>
    private bool BatchLoop(Socket socket)
    {
        const int EINTR = 4, EAGAIN = 11, ENOSYS = 38;
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        using var batch = new UdpBatch();
        var responses = new (int Slot, int Length)[UdpBatch.Slots];
        var count = 0;
        while (!_stopping)
        {
            var n = batch.Receive(fd);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == ENOSYS) return false;
                if (errno is not (EINTR or EAGAIN)) log.LogDebug("udp recvmmsg: errno {Errno}", errno);
                continue; // EAGAIN: the receive timeout, so that a stop is noticed
            }
            var k = 0;
            for (var i = 0; i < n; i++)
            {
                var timed = ++count % DnsMetrics.LatencySample == 0;
                var started = timed ? Stopwatch.GetTimestamp() : 0;
                var outcome = processor.Process(batch.Query(i), batch.Response(i), tcp: false);
                if (outcome.NotOurs && forwarder.Enabled && Forwardable(batch.Peer(i), socket.AddressFamily) is { } client)
                {
                    _ = ForwardAsync(socket, batch.Query(i).ToArray(), client, outcome.ClientUdpLimit);
                    continue;
                }
                if (!outcome.Dropped) responses[k++] = (i, outcome.Length);
                metrics.Query(false, outcome);
                if (timed) metrics.Latency(Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
            if (k > 0) batch.Send(fd, responses.AsSpan(0, k));
        }
        return true;
    }

    private IPEndPoint? Forwardable(ReadOnlySpan<byte> sockaddr, AddressFamily family)
    {
        var address = new SocketAddress(family, sockaddr.Length);
        sockaddr.CopyTo(address.Buffer.Span);
        return Forwardable(address);
    }

    /// <summary>One datagram per system call: where recvmmsg is not available.</summary>
    private void PortableLoop(Socket socket)
    {
        // Queries may be large (EDNS): never receive into 512 bytes.
        var rx = GC.AllocateUninitializedArray<byte>(DnsLimits.MaxMessage, pinned: true);
        var tx = GC.AllocateUninitializedArray<byte>(DnsLimits.MaxMessage, pinned: true);
        var from = new SocketAddress(socket.AddressFamily);
        var count = 0;
        while (!_stopping)
        {
            try
            {
                var n = socket.ReceiveFrom(rx, SocketFlags.None, from);
                var timed = ++count % DnsMetrics.LatencySample == 0;
                var started = timed ? Stopwatch.GetTimestamp() : 0;
                var outcome = processor.Process(rx.AsSpan(0, n), tx, tcp: false);
                if (outcome.NotOurs && forwarder.Enabled && Forwardable(from) is { } client)
                {
                    // Off the loop: an upstream may take its time; the loop keeps answering our names.
                    _ = ForwardAsync(socket, rx.AsSpan(0, n).ToArray(), client, outcome.ClientUdpLimit);
                    continue;
                }
                if (!outcome.Dropped) socket.SendTo(tx.AsSpan(0, outcome.Length), SocketFlags.None, from);
                metrics.Query(false, outcome);
                if (timed) metrics.Latency(Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                // The receive timeout: look at _stopping again.
            }
            catch (SocketException ex) when (!_stopping)
            {
                // ICMP errors from earlier sends surface here; the socket is fine.
                log.LogDebug("udp: {Error}", ex.SocketErrorCode);
            }
            catch (Exception) when (_stopping)
            {
                return;
            }
        }
    }

    private IPEndPoint? Forwardable(SocketAddress from)
    {
        var client = (IPEndPoint)AnyEndPoint.Create(from);
        return forwarder.Allows(client.Address) ? client : null;
    }

    private static readonly IPEndPoint AnyEndPoint = new(IPAddress.Any, 0);

    private async Task ForwardAsync(Socket socket, byte[] query, IPEndPoint client, int clientLimit)
    {
        try
        {
            var response = new byte[DnsLimits.MaxMessage];
            var n = await forwarder.ForwardAsync(query, response, clientLimit, CancellationToken.None);
            if (!_stopping) await socket.SendToAsync(response.AsMemory(0, n), SocketFlags.None, client);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            log.LogDebug("forwarded answer to {Client} not sent: {Error}", client, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(2)); // receives time out within 0.5 s
        foreach (var s in _sockets) s.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        foreach (var s in _sockets) s.Dispose();
    }
}
