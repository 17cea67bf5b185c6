using EdgeEru.Ssh.Keys;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Server;

// User authentication (RFC 4252): the ssh-userauth service, publickey only, attempts capped, within the login grace time.
internal sealed partial class SshServerConnection
{
    private async Task AuthenticateAsync(CancellationToken ct)
    {
        Info.Algorithms = _transport.Algorithms;
        Info.KeyExchanges = _transport.KeyExchanges;
        var serviceRequest = await _transport.ReceiveAsync(ct);
        {
            var r = new SshReader(serviceRequest.Span);
            if (r.Byte() != MessageNumber.ServiceRequest)
                throw new SshProtocolException($"expected a service request, got message {serviceRequest.Span[0]}");
            var service = r.Utf8("service name");
            if (service != "ssh-userauth")
                throw new SshProtocolException($"service {service} is not available", DisconnectReason.ServiceNotAvailable);
            await _transport.SendAsync(new SshWriter().Byte(MessageNumber.ServiceAccept).String("ssh-userauth"), ct);
        }
        var failures = 0;
        while (true)
        {
            var payload = await _transport.ReceiveAsync(ct);
            if (payload.Span[0] != MessageNumber.UserAuthRequest)
            {
                if (payload.Span[0] is >= 50 and <= 79)
                    throw new SshProtocolException($"unexpected authentication message {payload.Span[0]}");
                await Unimplemented(ct);
                continue;
            }
            var (accepted, reason) = await TryLoginAsync(payload, ct);
            if (accepted) break;
            if (reason is null) continue; // a query or "none": not an attempt
            if (++failures >= _options.MaxAuthTries)
            {
                throw new SshProtocolException($"too many authentication failures ({failures})",
                    DisconnectReason.NoMoreAuthMethodsAvailable);
            }
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
        if (service != "ssh-connection")
            throw new SshProtocolException($"service {service} is not available", DisconnectReason.ServiceNotAvailable);
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

    private static (string User, string Service, string Method, bool HasSignature, string Algorithm, byte[] Key, byte[] Signature,
        int SignedLength)
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
}
