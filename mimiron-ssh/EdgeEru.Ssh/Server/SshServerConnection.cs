using System.Net;
using EdgeEru.Ssh.Connection;
using EdgeEru.Ssh.Keys;
using EdgeEru.Ssh.Transport;
using EdgeEru.Ssh.Wire;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Ssh.Server;

/// <summary>One client connection: transport handshake, user authentication (RFC 4252), then the connection protocol (RFC 4254).</summary>
internal sealed class SshServerConnection : IAsyncDisposable
{
    private readonly SshTransport _transport;
    private readonly SshServerOptions _options;
    private readonly SshServerHandler _handler;
    private readonly ILogger _log;
    private readonly Dictionary<uint, SessionChannel> _channels = [];
    private uint _nextChannel;

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
                    throw new SshProtocolException($"no successful login within {_options.LoginGraceTime.TotalSeconds:0} s", DisconnectReason.ByApplication);
                }
            }
            await ServeAsync(cts.Token);
        }
        catch (SshProtocolException e)
        {
            error = e;
            _log.LogInformation("connection {Id} from {Remote}: {Error}", Info.Id, Info.RemoteEndPoint, e.Message);
            await _transport.DisconnectAsync(e.Reason, e.Message);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SshDisconnectedException or OperationCanceledException or ObjectDisposedException)
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

    private async Task AuthenticateAsync(CancellationToken ct)
    {
        Info.Algorithms = _transport.Algorithms;
        Info.KeyExchanges = _transport.KeyExchanges;
        var serviceRequest = await _transport.ReceiveAsync(ct);
        {
            var r = new SshReader(serviceRequest.Span);
            if (r.Byte() != MessageNumber.ServiceRequest) throw new SshProtocolException($"expected a service request, got message {serviceRequest.Span[0]}");
            var service = r.Utf8("service name");
            if (service != "ssh-userauth") throw new SshProtocolException($"service {service} is not available", DisconnectReason.ServiceNotAvailable);
            await _transport.SendAsync(new SshWriter().Byte(MessageNumber.ServiceAccept).String("ssh-userauth"), ct);
        }
        var failures = 0;
        while (true)
        {
            var payload = await _transport.ReceiveAsync(ct);
            if (payload.Span[0] != MessageNumber.UserAuthRequest)
            {
                if (payload.Span[0] is >= 50 and <= 79) throw new SshProtocolException($"unexpected authentication message {payload.Span[0]}");
                await _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.Unimplemented).UInt32(_transport.LastReceivedSequence), ct);
                continue;
            }
            var (accepted, reason) = await TryLoginAsync(payload, ct);
            if (accepted) break;
            if (reason is null) continue; // a query or "none": not an attempt
            if (++failures >= _options.MaxAuthTries)
                throw new SshProtocolException($"too many authentication failures ({failures})", DisconnectReason.NoMoreAuthMethodsAvailable);
        }
    }

    private ValueTask Failure(CancellationToken ct) =>
        _transport.SendAsync(new SshWriter().Byte(MessageNumber.UserAuthFailure).NameList(["publickey"]).Boolean(false), ct);

    /// <summary>
    /// One USERAUTH_REQUEST; returns accepted, or the reason an attempt failed (null when it was no attempt).
    /// Failures are reported to the handler before the client hears of them, so an audit record exists when it gives up.
    /// </summary>
    private async Task<(bool Accepted, string? Reason)> TryLoginAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var (user, service, method, hasSignature, algorithm, keyBlob, signature, signedPrefixLength) = ParseRequest(payload.Span);
        if (service != "ssh-connection") throw new SshProtocolException($"service {service} is not available", DisconnectReason.ServiceNotAvailable);
        if (method != "publickey")
        {
            if (method != "none") _handler.OnAuthFailed(Info, user, null, $"method {method} is not offered");
            await Failure(ct);
            return (false, method == "none" ? null : $"method {method}");
        }
        SshPublicKey key;
        try
        {
            key = SshPublicKey.Parse(keyBlob);
        }
        catch (SshProtocolException e)
        {
            _handler.OnAuthFailed(Info, user, null, "unusable key: " + e.Message);
            await Failure(ct);
            return (false, e.Message);
        }
        if (!key.SignatureAlgorithms.Contains(algorithm))
        {
            _handler.OnAuthFailed(Info, user, key, $"signature algorithm {algorithm} does not fit a {key.KeyType} key");
            await Failure(ct);
            return (false, "algorithm");
        }
        if (!hasSignature)
        {
            var query = await _handler.AuthorizeAsync(new SshAuthRequest(Info, user, key, algorithm, false), ct);
            if (query.Accepted)
            {
                await _transport.SendAsync(new SshWriter().Byte(MessageNumber.UserAuthPkOk).String(algorithm).String(keyBlob), ct);
                return (false, null);
            }
            // A refused key counts as an attempt, as in sshd: a client offering key after key runs out of tries.
            _handler.OnAuthFailed(Info, user, key, query.Reason ?? "refused");
            await Failure(ct);
            return (false, query.Reason ?? "refused");
        }
        // RFC 4252 §7: the signature covers the session id and the request up to the signature. Checked before anything else happens.
        var signed = new SshWriter(payload.Length + 64).String(_transport.SessionId).Raw(payload.Span[..signedPrefixLength]);
        if (!key.Verify(algorithm, signed.WrittenSpan, signature))
        {
            _handler.OnAuthFailed(Info, user, key, "signature does not verify");
            await Failure(ct);
            return (false, "signature");
        }
        var decision = await _handler.AuthorizeAsync(new SshAuthRequest(Info, user, key, algorithm, true), ct);
        if (!decision.Accepted)
        {
            _handler.OnAuthFailed(Info, user, key, decision.Reason ?? "refused");
            await Failure(ct);
            return (false, decision.Reason ?? "refused");
        }
        Info.User = user;
        Info.Key = key;
        Info.Principal = decision.Principal;
        await _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.UserAuthSuccess), ct);
        return (true, null);
    }

    private static (string User, string Service, string Method, bool HasSignature, string Algorithm, byte[] Key, byte[] Signature, int SignedLength)
        ParseRequest(ReadOnlySpan<byte> payload)
    {
        var r = new SshReader(payload);
        r.Byte();
        var user = r.Utf8("user name");
        var service = r.Utf8("service name");
        var method = r.Utf8("method name");
        if (method != "publickey") return (user, service, method, false, "", [], [], 0);
        var hasSig = r.Boolean("has signature");
        var alg = r.Utf8("public key algorithm");
        var key = r.String("public key").ToArray();
        var signedLength = payload.Length - r.Remaining;
        var sig = hasSig ? r.String("signature").ToArray() : [];
        r.ExpectEnd("publickey request");
        if (user.Length > 256) throw new SshProtocolException("user name longer than 256 bytes");
        return (user, service, method, hasSig, alg, key, sig, signedLength);
    }

    private async Task ServeAsync(CancellationToken ct)
    {
        while (true)
        {
            Info.Algorithms = _transport.Algorithms;
            Info.KeyExchanges = _transport.KeyExchanges;
            // A finished channel whose close went both ways frees its number's slot.
            foreach (var id in _channels.Where(c => c.Value.Closed && c.Value.Completion.IsCompleted).Select(c => c.Key).ToList()) _channels.Remove(id);
            var payload = await _transport.ReceiveAsync(ct);
            var r = new SshReader(payload.Span);
            var msg = r.Byte();
            switch (msg)
            {
                case MessageNumber.GlobalRequest:
                {
                    r.Utf8("request name");
                    // Nothing global is offered (no forwarding); keepalive@openssh.com only wants an answer, and a failure is one.
                    if (r.Boolean("want reply")) await _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.RequestFailure), ct);
                    break;
                }
                case MessageNumber.ChannelOpen:
                {
                    var type = r.Utf8("channel type");
                    var sender = r.UInt32("sender channel");
                    var window = r.UInt32("initial window size");
                    var maxPacket = r.UInt32("maximum packet size");
                    await OpenChannelAsync(type, sender, window, maxPacket, ct);
                    break;
                }
                case MessageNumber.ChannelWindowAdjust:
                    Channel(ref r).OnWindowAdjust(r.UInt32("bytes to add"));
                    break;
                case MessageNumber.ChannelData:
                {
                    var c = Channel(ref r);
                    var offset = payload.Length - r.Remaining + 4;
                    var n = r.String("data").Length;
                    await c.OnDataAsync(payload.Slice(offset, n), false);
                    break;
                }
                case MessageNumber.ChannelExtendedData:
                {
                    var c = Channel(ref r);
                    r.UInt32("data type");
                    var offset = payload.Length - r.Remaining + 4;
                    var n = r.String("data").Length;
                    await c.OnDataAsync(payload.Slice(offset, n), true); // counted against the window, then dropped
                    break;
                }
                case MessageNumber.ChannelEof:
                    Channel(ref r).OnEof();
                    break;
                case MessageNumber.ChannelClose:
                    await Channel(ref r).OnCloseAsync();
                    break;
                case MessageNumber.ChannelRequest:
                {
                    var c = Channel(ref r);
                    var type = r.Utf8("request type");
                    var wantReply = r.Boolean("want reply");
                    var ok = c.OnRequest(type, ref r);
                    if (wantReply && !c.Closed)
                        await _transport.SendAsync(new SshWriter(8).Byte(ok ? MessageNumber.ChannelSuccess : MessageNumber.ChannelFailure).UInt32(c.RemoteId), ct);
                    c.Launch();
                    break;
                }
                case MessageNumber.ChannelSuccess or MessageNumber.ChannelFailure or MessageNumber.RequestSuccess or MessageNumber.RequestFailure:
                    break; // we send no requests that want replies
                case MessageNumber.UserAuthRequest:
                    break; // RFC 4252 §5.1: ignored after success
                default:
                    await _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.Unimplemented).UInt32(_transport.LastReceivedSequence), ct);
                    break;
            }
        }
    }

    private SessionChannel Channel(ref SshReader r)
    {
        var id = r.UInt32("recipient channel");
        if (!_channels.TryGetValue(id, out var c)) throw new SshProtocolException($"message for channel {id}, which is not open");
        return c;
    }

    private async Task OpenChannelAsync(string type, uint sender, uint window, uint maxPacket, CancellationToken ct)
    {
        async Task Refuse(uint code, string why) =>
            await _transport.SendAsync(new SshWriter().Byte(MessageNumber.ChannelOpenFailure).UInt32(sender).UInt32(code).String(why).String(""), ct);
        if (type != "session")
        {
            await Refuse(type is "direct-tcpip" or "x11" or "forwarded-tcpip" or "auth-agent@openssh.com" ? 1u : 3u, $"{type} channels are not offered");
            return;
        }
        if (_channels.Count >= _options.MaxChannels)
        {
            await Refuse(4, $"at most {_options.MaxChannels} channels per connection");
            return;
        }
        while (_channels.ContainsKey(_nextChannel)) _nextChannel++;
        var id = _nextChannel++;
        _channels[id] = new SessionChannel(id, sender, window, maxPacket, _transport, _handler, Info, _options, _log, ct);
        await _transport.SendAsync(new SshWriter().Byte(MessageNumber.ChannelOpenConfirmation).UInt32(sender).UInt32(id)
            .UInt32(_options.ChannelWindow).UInt32(_options.ChannelMaxPacket), ct);
    }
}
