using System.Buffers.Binary;
using System.Text;
using EdgeEru.Ssh.Crypto;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Transport;

/// <summary>
/// Reads the identification line and then binary packets (RFC 4253 §4.2, §6) from a stream, through the current protector.
/// </summary>
internal sealed class PacketReader(Stream stream)
{
    /// <summary>Largest packet_length accepted; RFC 4253 §6.1 requires 35000, OpenSSH allows 256 KiB.</summary>
    public const int MaxPacketLength = 256 * 1024;

    private byte[] _buf = new byte[64 * 1024];
    private int _start;
    private int _end;

    public PacketProtector Protector { get; set; } = NoneProtector.Instance;
    public uint Sequence { get; set; }
    public long BytesRead { get; private set; }

    private async ValueTask Fill(int needed, CancellationToken ct)
    {
        if (_end - _start >= needed) return;
        if (_start + needed > _buf.Length)
        {
            if (needed > _buf.Length) Array.Resize(ref _buf, Math.Max(needed, _buf.Length * 2));
            Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        while (_end - _start < needed)
        {
            var n = await stream.ReadAsync(_buf.AsMemory(_end), ct);
            if (n == 0) throw new EndOfStreamException("the peer closed the connection");
            _end += n;
            BytesRead += n;
        }
    }

    /// <summary>The peer's identification string without CR LF.</summary>
    public async ValueTask<string> ReadIdentificationAsync(CancellationToken ct)
    {
        // Only a server may send lines before its identification (RFC 4253 §4.2): a client's first line must be it.
        var line = await ReadLineAsync(ct);
        if (!line.StartsWith("SSH-", StringComparison.Ordinal))
            throw new SshProtocolException($"not an SSH identification string: {Printable(line)}",
                DisconnectReason.ProtocolVersionNotSupported);
        if (!line.StartsWith("SSH-2.0-", StringComparison.Ordinal) && !line.StartsWith("SSH-1.99-", StringComparison.Ordinal))
            throw new SshProtocolException($"protocol version not supported: {Printable(line)}",
                DisconnectReason.ProtocolVersionNotSupported);
        return line;
    }

    private async ValueTask<string> ReadLineAsync(CancellationToken ct)
    {
        const int maxLine = 255; // RFC 4253 §4.2, including CR LF
        var scanned = 0;
        while (true)
        {
            var avail = _buf.AsSpan(_start, _end - _start);
            var nl = avail[scanned..].IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var len = scanned + nl;
                var line = avail[..len];
                if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
                if (line.Length + 2 > maxLine)
                    throw new SshProtocolException("identification line longer than 255 bytes",
                        DisconnectReason.ProtocolVersionNotSupported);
                var s = Encoding.ASCII.GetString(line);
                _start += len + 1;
                return s;
            }
            scanned = avail.Length;
            if (scanned > maxLine)
                throw new SshProtocolException(
                    "identification line longer than 255 bytes: "
                        + Printable(Encoding.ASCII.GetString(avail[..Math.Min(40, avail.Length)])),
                    DisconnectReason.ProtocolVersionNotSupported);
            await Fill(avail.Length + 1, ct);
        }
    }

    private static string Printable(string s)
    {
        var t = new string(s.Take(60).Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());
        return s.Length > 60 ? t + "..." : t;
    }

    /// <summary>The payload of the next packet; valid until the next call.</summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReadPacketAsync(CancellationToken ct)
    {
        var p = Protector;
        var first = p.FirstChunk;
        await Fill(first, ct);
        var length = p.ReadLength(Sequence, _buf.AsSpan(_start, first));
        var aligned = p.LengthOutsideAlignment ? length : length + 4;
        if (length < 5 || length > MaxPacketLength || aligned % p.BlockSize != 0)
            throw new SshProtocolException($"bad packet length {length}",
                p.MacLength > 0 ? DisconnectReason.MacError : DisconnectReason.ProtocolError);
        var total = 4 + (int)length + p.MacLength;
        await Fill(total, ct);
        var packet = _buf.AsSpan(_start, 4 + (int)length);
        if (!p.Open(Sequence, packet, _buf.AsSpan(_start + 4 + (int)length, p.MacLength)))
            throw new SshProtocolException("MAC error", DisconnectReason.MacError);
        var padding = packet[4];
        var payloadLength = (int)length - 1 - padding;
        if (padding < 4 || payloadLength < 1) throw new SshProtocolException($"bad padding length {padding} for packet length {length}");
        var payload = _buf.AsMemory(_start + 5, payloadLength);
        _start += total;
        if (_start == _end) _start = _end = 0;
        Sequence = unchecked(Sequence + 1);
        return payload;
    }

    internal static uint ReadUInt32(ReadOnlySpan<byte> b) => BinaryPrimitives.ReadUInt32BigEndian(b);
}
