using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Ssh.Crypto;
using EdgeEru.Ssh.Kex;
using EdgeEru.Ssh.Server;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Transport;

/// <summary>
/// The server side of the SSH transport layer (RFC 4253): identification, key exchange and rekeying, packet protection.
/// One reader (the connection's loop) calls <see cref="ReceiveAsync"/>; any task may send.
/// While a key exchange runs, non-kex messages are queued and sent, in order, right after our NEWKEYS, so no
/// sender ever waits on the reader (which drives the exchange).
/// </summary>
internal sealed class SshTransport : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly SshServerOptions _options;
    private readonly PacketReader _reader;
    private readonly PacketWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Queue<byte[]> _queued = new();
    private readonly string _serverId;
    private readonly KexInit _serverKexInit;

    private byte[]? _ourKexInitPayload; // set from our KEXINIT until our NEWKEYS
    private bool _firstKex = true;
    private bool _strict;
    private bool _clientWantsExtInfo;
    private long _readAtKex, _writtenAtKex;
    private long _kexAt = Stopwatch.GetTimestamp();
    private bool _closed;

    public SshTransport(Stream stream, SshServerOptions options)
    {
        _stream = stream;
        _options = options;
        _reader = new PacketReader(stream);
        _writer = new PacketWriter(stream);
        _serverId = "SSH-2.0-" + options.SoftwareVersion;
        var hostKeyAlgs = options.HostKeys.SelectMany(k => k.Algorithms).ToArray();
        _serverKexInit = new KexInit(
            [.. options.KexAlgorithms, KexInit.ExtInfoServer, KexInit.StrictServer], hostKeyAlgs,
            [.. options.Ciphers], [.. options.Ciphers], [.. options.Macs], [.. options.Macs], ["none"], ["none"], false);
    }

    public string ClientVersion { get; private set; } = "";
    public byte[] SessionId { get; private set; } = [];
    public int KeyExchanges { get; private set; }

    /// <summary>What the last key exchange chose (for logs and tests).</summary>
    public string? Algorithms { get; private set; }

    /// <summary>Sequence number of the last packet received (for SSH_MSG_UNIMPLEMENTED).</summary>
    public uint LastReceivedSequence => unchecked(_reader.Sequence - 1);

    public long BytesIn => _reader.BytesRead;
    public long BytesOut => _writer.BytesWritten;

    /// <summary>Identification exchange and the first key exchange.</summary>
    public async Task HandshakeAsync(CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct);
        try
        {
            await _stream.WriteAsync(Encoding.ASCII.GetBytes(_serverId + "\r\n"), ct);
            SendOurKexInitLocked();
            await _writer.FlushAsync(ct);
        }
        finally
        {
            _writeLock.Release();
        }
        ClientVersion = await _reader.ReadIdentificationAsync(ct);
        while (_firstKex)
        {
            var payload = await _reader.ReadPacketAsync(ct);
            switch (payload.Span[0])
            {
                case MessageNumber.KexInit:
                    await RunKexAsync(payload, ct);
                    break;
                case MessageNumber.Ignore or MessageNumber.Debug:
                    break; // allowed before KEXINIT unless strict, which the KEXINIT's position checks
                case MessageNumber.Disconnect:
                    throw Disconnected(payload.Span);
                default:
                    throw new SshProtocolException($"message {payload.Span[0]} before the key exchange");
            }
        }
    }

    /// <summary>The next message for the layers above; transport messages and key exchanges are handled here.</summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReceiveAsync(CancellationToken ct)
    {
        while (true)
        {
            var payload = await _reader.ReadPacketAsync(ct);
            var msg = payload.Span[0];
            switch (msg)
            {
                case MessageNumber.Disconnect:
                    throw Disconnected(payload.Span);
                case MessageNumber.Ignore or MessageNumber.Debug or MessageNumber.Unimplemented or MessageNumber.ExtInfo:
                    continue;
                case MessageNumber.KexInit:
                    await RunKexAsync(payload, ct);
                    continue;
                case >= MessageNumber.NewKeys and <= 49:
                    throw new SshProtocolException($"key exchange message {msg} outside a key exchange");
            }
            if (RekeyDue()) await StartRekeyAsync(ct);
            return payload;
        }
    }

    private bool RekeyDue() =>
        !_firstKex && _ourKexInitPayload is null &&
        (_reader.BytesRead - _readAtKex > _options.RekeyBytes || _writer.BytesWritten - _writtenAtKex > _options.RekeyBytes ||
         Stopwatch.GetElapsedTime(_kexAt) > _options.RekeyInterval);

    /// <summary>Starts a key exchange from our side (the client's KEXINIT answer drives the rest through the reader).</summary>
    public async Task StartRekeyAsync(CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct);
        try
        {
            if (_ourKexInitPayload is not null || _closed) return;
            SendOurKexInitLocked();
            await _writer.FlushAsync(ct);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void SendOurKexInitLocked()
    {
        _ourKexInitPayload = _serverKexInit.Encode();
        _writer.Frame(_ourKexInitPayload);
    }

    /// <summary>Sends a message; while a key exchange runs, non-kex messages wait in order for the new keys.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> payload, CancellationToken ct = default)
    {
        await _writeLock.WaitAsync(ct);
        try
        {
            if (_closed) throw new ObjectDisposedException(nameof(SshTransport), "the connection is closed");
            if (_ourKexInitPayload is null && RekeyDue()) SendOurKexInitLocked();
            if (_ourKexInitPayload is not null && !MessageNumber.IsKexAllowed(payload.Span[0]))
            {
                _queued.Enqueue(payload.ToArray());
            }
            else
            {
                _writer.Frame(payload.Span);
            }
            await _writer.FlushAsync(CancellationToken.None); // a half-written packet would break the stream: never cancel mid-write
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public ValueTask SendAsync(SshWriter message, CancellationToken ct = default) => SendAsync(message.WrittenMemory, ct);

    /// <summary>Sends SSH_MSG_DISCONNECT (best effort) and closes.</summary>
    public async Task DisconnectAsync(DisconnectReason reason, string description)
    {
        if (!await _writeLock.WaitAsync(TimeSpan.FromSeconds(2))) return;
        try
        {
            if (_closed) return;
            _closed = true;
            _writer.Frame(new SshWriter().Byte(MessageNumber.Disconnect).UInt32((uint)reason).String(description).String("").WrittenSpan);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _writer.FlushAsync(cts.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // the peer is gone already
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static SshDisconnectedException Disconnected(ReadOnlySpan<byte> payload)
    {
        var r = new SshReader(payload[1..]);
        var reason = (DisconnectReason)r.UInt32("disconnect reason");
        return new SshDisconnectedException(reason, r.Utf8("disconnect description"));
    }

    private async Task RunKexAsync(ReadOnlyMemory<byte> clientKexInitPayload, CancellationToken ct)
    {
        var clientInit = clientKexInitPayload.ToArray();
        var client = KexInit.Decode(clientInit);
        if (_firstKex)
        {
            _strict = client.Kex.Contains(KexInit.StrictClient);
            _clientWantsExtInfo = client.Kex.Contains(KexInit.ExtInfoClient);
            // Strict kex (the Terrapin fix): KEXINIT must be the very first packet.
            if (_strict && _reader.Sequence != 1) throw new SshProtocolException("strict key exchange: KEXINIT was not the first packet");
        }
        if (_ourKexInitPayload is null) await StartRekeyAsync(ct);
        var serverInit = _ourKexInitPayload!;
        var chosen = Negotiated.From(client, _serverKexInit, name => CipherInfo.Find(name)?.IsAead == true);
        if (client.FirstKexPacketFollows && !chosen.GuessWasRight(client)) await ReadKexMessageAsync(null, ct);

        var init = await ReadKexMessageAsync(MessageNumber.KexEcdhInit, ct);
        var r = new SshReader(init.Span[1..]);
        var clientPublic = r.String("client ephemeral key").ToArray();
        r.ExpectEnd("KEX_ECDH_INIT");

        var method = KeyExchangeMethod.Create(chosen.Kex);
        var (serverPublic, k) = method.Agree(clientPublic);
        var hostKey = _options.HostKeys.First(h => h.Algorithms.Contains(chosen.HostKey));
        var hostKeyBlob = hostKey.PublicBlob;
        var h = new SshWriter(2048)
            .String(ClientVersion).String(_serverId).String(clientInit).String(serverInit).String(hostKeyBlob)
            .String(clientPublic).String(serverPublic).Raw(k);
        var exchangeHash = method.Hash == HashAlgorithmName.SHA256 ? SHA256.HashData(h.WrittenSpan) : SHA512.HashData(h.WrittenSpan);
        if (SessionId.Length == 0) SessionId = exchangeHash;
        var reply = new SshWriter(1024).Byte(MessageNumber.KexEcdhReply).String(hostKeyBlob).String(serverPublic)
            .String(hostKey.Sign(chosen.HostKey, exchangeHash));

        PacketProtector Protector(string cipherName, string? macName, char iv, char key, char mac)
        {
            var cipher = CipherInfo.Find(cipherName)!;
            var m = macName is null ? null : MacInfo.Find(macName);
            byte[] D(char c, int n) => n == 0 ? [] : KeyDerivation.Derive(method.Hash, k, exchangeHash, c, SessionId, n);
            return Protectors.Create(cipher, m, D(key, cipher.KeySize), D(iv, cipher.IvSize), D(mac, m?.KeySize ?? 0));
        }

        var outgoing = Protector(chosen.CipherStoC, chosen.MacStoC, 'B', 'D', 'F');
        var incoming = Protector(chosen.CipherCtoS, chosen.MacCtoS, 'A', 'C', 'E');

        await _writeLock.WaitAsync(ct);
        try
        {
            _writer.Frame(reply.WrittenSpan);
            _writer.Frame([MessageNumber.NewKeys]);
            var old = _writer.Protector;
            _writer.Protector = outgoing;
            if (!ReferenceEquals(old, NoneProtector.Instance)) old.Dispose();
            if (_strict) _writer.Sequence = 0;
            // EXT_INFO must be the first message after our first NEWKEYS (RFC 8308 §2.4).
            if (_firstKex && _clientWantsExtInfo) _writer.Frame(ExtInfo().WrittenSpan);
            _ourKexInitPayload = null;
            while (_queued.TryDequeue(out var q)) _writer.Frame(q);
            await _writer.FlushAsync(CancellationToken.None);
        }
        finally
        {
            _writeLock.Release();
        }

        await ReadKexMessageAsync(MessageNumber.NewKeys, ct);
        var oldIn = _reader.Protector;
        _reader.Protector = incoming;
        if (!ReferenceEquals(oldIn, NoneProtector.Instance)) oldIn.Dispose();
        if (_strict) _reader.Sequence = 0;
        _firstKex = false;
        KeyExchanges++;
        Algorithms =
            $"{chosen.Kex} {chosen.HostKey} {chosen.CipherCtoS}/{chosen.MacCtoS ?? "aead"} {chosen.CipherStoC}/{chosen.MacStoC ?? "aead"}";
        _readAtKex = _reader.BytesRead;
        _writtenAtKex = _writer.BytesWritten;
        _kexAt = Stopwatch.GetTimestamp();
    }

    /// <summary>Signature algorithms we accept for user authentication (RFC 8308 §3.1).</summary>
    public const string ServerSigAlgs = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";

    private static SshWriter ExtInfo() =>
        new SshWriter().Byte(MessageNumber.ExtInfo).UInt32(1).String("server-sig-algs").String(ServerSigAlgs);

    /// <summary>The next key exchange message, which must be <paramref name="expected"/> (null: any, to discard a wrong guess).</summary>
    private async ValueTask<ReadOnlyMemory<byte>> ReadKexMessageAsync(byte? expected, CancellationToken ct)
    {
        while (true)
        {
            var payload = await _reader.ReadPacketAsync(ct);
            var msg = payload.Span[0];
            if (msg == MessageNumber.Disconnect) throw Disconnected(payload.Span);
            if (msg is MessageNumber.Ignore or MessageNumber.Debug or MessageNumber.Unimplemented && !(_strict && _firstKex)) continue;
            if (expected is null || msg == expected) return payload;
            throw new SshProtocolException($"unexpected message {msg} during key exchange (expected {expected})",
                DisconnectReason.KeyExchangeFailed);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _closed = true;
        await _stream.DisposeAsync();
        _reader.Protector.Dispose();
        _writer.Protector.Dispose();
    }
}
