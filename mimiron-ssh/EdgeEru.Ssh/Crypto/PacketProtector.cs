using System.Buffers.Binary;

namespace EdgeEru.Ssh.Crypto;

/// <summary>
/// Encryption and integrity of binary packets in one direction (RFC 4253 §6): a packet is
/// <c>uint32 packet_length | byte padding_length | payload | padding</c>, followed by <see cref="MacLength"/> bytes of MAC or tag.
/// </summary>
internal abstract class PacketProtector : IDisposable
{
    /// <summary>The alignment of the padded packet (at least 8).</summary>
    public abstract int BlockSize { get; }

    public abstract int MacLength { get; }

    /// <summary>True when the length field is outside the alignment and readable before the rest (AEAD, encrypt-then-MAC).</summary>
    public abstract bool LengthOutsideAlignment { get; }

    /// <summary>How many bytes must be read to learn the packet length.</summary>
    public int FirstChunk => LengthOutsideAlignment ? 4 : BlockSize;

    /// <summary>Encrypts <paramref name="packet"/> in place and writes the MAC/tag.</summary>
    public abstract void Seal(uint sequence, Span<byte> packet, Span<byte> mac);

    /// <summary>
    /// The packet length from the first <see cref="FirstChunk"/> bytes (decrypting them in place when the mode needs to).
    /// </summary>
    public abstract uint ReadLength(uint sequence, Span<byte> firstChunk);

    /// <summary>Checks the MAC/tag and decrypts the packet in place; false when the MAC is wrong.</summary>
    public abstract bool Open(uint sequence, Span<byte> packet, ReadOnlySpan<byte> mac);

    public virtual void Dispose() => GC.SuppressFinalize(this);
}

/// <summary>Before the first NEWKEYS: no encryption, no MAC.</summary>
internal sealed class NoneProtector : PacketProtector
{
    public static readonly NoneProtector Instance = new();
    public override int BlockSize => 8;
    public override int MacLength => 0;
    public override bool LengthOutsideAlignment => false;
    public override void Seal(uint sequence, Span<byte> packet, Span<byte> mac) { }
    public override uint ReadLength(uint sequence, Span<byte> firstChunk) => BinaryPrimitives.ReadUInt32BigEndian(firstChunk);
    public override bool Open(uint sequence, Span<byte> packet, ReadOnlySpan<byte> mac) => true;
}
