using System.Net;
using EdgeEru.Ssh.Transport;
using EdgeEru.Ssh.Wire;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Ssh.Server;

/// <summary>
/// One client connection, phase by phase: the transport handshake, then user authentication (RFC 4252,
/// <c>SshServerConnection.Authentication.cs</c>), then the connection protocol's channels (RFC 4254,
/// <c>SshServerConnection.Channels.cs</c>). This file holds what spans them: the run and its teardown.
/// </summary>
internal sealed partial class SshServerConnection : IAsyncDisposable
{
    private readonly SshTransport _transport;
    private readonly SshServerOptions _options;
    private readonly SshServerHandler _handler;
    private readonly ILogger _log;

    public SshServerConnection(Stream stream, EndPoint? remote, long id, SshServerOptions options, SshServerHandler handler, ILogger log)
    {
        _transport = new SshTransport(stream, options);
        _options = options;
        _handler = handler;
        _log = log;
        Info = new SshConnectionInfo { Id = id, RemoteEndPoint = remote };
    }

    public SshConnectionInfo Info { get; }

    public ValueTask DisposeAsync() => _transport.DisposeAsync();

    public async Task RunAsync(CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Exception? error = null;
        try
        {
            using (var grace = CancellationTokenSource.CreateLinkedTokenSource(cts.Token))
            {
                grace.CancelAfter(_options.LoginGraceTime);
                try
                {
                    await _transport.HandshakeAsync(grace.Token);
                    Info.ClientVersion = _transport.ClientVersion;
                    await AuthenticateAsync(grace.Token);
                }
                catch (OperationCanceledException) when (grace.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    throw new SshProtocolException($"no successful login within {_options.LoginGraceTime.TotalSeconds:0} s",
                        DisconnectReason.ByApplication);
                }
            }
            await ServeChannelsAsync(cts.Token);
        }
        catch (SshProtocolException e)
        {
            error = e;
            _log.LogInformation("connection {Id} from {Remote}: {Error}", Info.Id, Info.RemoteEndPoint, e.Message);
            await _transport.DisconnectAsync(e.Reason, e.Message);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SshDisconnectedException or OperationCanceledException
            or ObjectDisposedException)
        {
            error = e is SshDisconnectedException { Reason: DisconnectReason.ByApplication } || e is EndOfStreamException ? null : e;
            _log.LogDebug("connection {Id} ended: {Reason}", Info.Id, e.Message);
        }
        finally
        {
            Info.Algorithms = _transport.Algorithms;
            Info.KeyExchanges = _transport.KeyExchanges;
            await cts.CancelAsync();
            await Task.WhenAll(_channels.Values.Select(c => c.Completion));
            foreach (var c in _channels.Values) c.Dispose();
            await _transport.DisposeAsync();
            _handler.OnConnectionClosed(Info, error);
        }
    }

    /// <summary>The answer to a message we do not know, in either phase (RFC 4253 §11.4).</summary>
    private ValueTask Unimplemented(CancellationToken ct) =>
        _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.Unimplemented).UInt32(_transport.LastReceivedSequence), ct);
}
