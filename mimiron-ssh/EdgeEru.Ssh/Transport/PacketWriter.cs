using System.Buffers.Binary;
using System.Security.Cryptography;
using EdgeEru.Ssh.Crypto;

namespace EdgeEru.Ssh.Transport;

/// <summary>Frames payloads into binary packets (RFC 4253 §6) and writes them; callers serialise access.</summary>
internal sealed class PacketWriter(Stream stream)
{
    private byte[] _buf = new byte[64 * 1024];

    public PacketProtector Protector { get; set; } = NoneProtector.Instance;
    public uint Sequence { get; set; }
    public long BytesWritten { get; private set; }

    /// <summary>Frames and seals one packet into the buffer (<see cref="FlushAsync"/> sends what was framed).</summary>
    public void Frame(ReadOnlySpan<byte> payload)
    {
        var p = Protector;
        var bs = p.BlockSize;
        var unpadded = (p.LengthOutsideAlignment ? 1 : 5) + payload.Length;
        var padding = bs - unpadded % bs;
        if (padding < 4) padding += bs;
        var length = 1 + payload.Length + padding;
        var total = 4 + length + p.MacLength;
        if (_pending + total > _buf.Length) Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _pending + total));
        var packet = _buf.AsSpan(_pending, 4 + length);
        BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)length);
        packet[4] = (byte)padding;
        payload.CopyTo(packet[5..]);
        RandomNumberGenerator.Fill(packet[(5 + payload.Length)..]);
        p.Seal(Sequence, packet, _buf.AsSpan(_pending + 4 + length, p.MacLength));
        Sequence = unchecked(Sequence + 1);
        _pending += total;
    }

    private int _pending;

    public bool HasPending => _pending > 0;

    public async ValueTask FlushAsync(CancellationToken ct)
    {
        if (_pending == 0) return;
        var n = _pending;
        _pending = 0;
        await stream.WriteAsync(_buf.AsMemory(0, n), ct);
        BytesWritten += n;
        if (_buf.Length > 1024 * 1024) _buf = new byte[64 * 1024]; // give back the room a burst took
    }
}
