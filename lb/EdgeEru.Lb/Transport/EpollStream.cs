using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// A connection to a workload for the forwarder's HTTP client (SocketsHttpHandler.ConnectCallback), on the
/// same event loops as the client side: the response to a proxied request wakes the loop that sent it.
/// </summary>
internal sealed class EpollStream(EpollSocket socket) : Stream
{
    /// <summary>The forwarder's HTTP client connects here (SocketsHttpHandler.ConnectCallback).</summary>
    public static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var target = context.DnsEndPoint;
        var address = IPAddress.TryParse(target.Host, out var ip) ? ip
            : (await Dns.GetHostAddressesAsync(target.Host, cancellationToken))[0];
        return new EpollStream(await EpollSocket.ConnectAsync(new IPEndPoint(address, target.Port), cancellationToken));
    }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    // A cancelled read or write leaves an HTTP/1.1 connection unusable anyway: cancelling closes the socket.
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.CanBeCanceled ? ReadCancellableAsync(buffer, cancellationToken) : socket.ReceiveAsync(buffer);

    private async ValueTask<int> ReadCancellableAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static s => ((EpollSocket)s!).Dispose(), socket))
        {
            try { return await socket.ReceiveAsync(buffer); }
            catch (SocketException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.CanBeCanceled ? WriteCancellableAsync(buffer, cancellationToken) : socket.SendAsync(buffer);

    private async ValueTask WriteCancellableAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static s => ((EpollSocket)s!).Dispose(), socket))
        {
            try { await socket.SendAsync(buffer); }
            catch (SocketException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override void Flush() { }

    // The forwarder is asynchronous throughout; a synchronous caller would block a loop thread.
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("EpollStream is asynchronous only");
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("EpollStream is asynchronous only");
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) socket.Dispose();
        base.Dispose(disposing);
    }
}
