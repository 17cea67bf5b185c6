using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EdgeEru.Ssh.Crypto;

/// <summary>
/// aes128-gcm@openssh.com / aes256-gcm@openssh.com (RFC 5647 as OpenSSH names it): the length is additional data,
/// the 12-byte nonce is a 4-byte fixed field and an 8-byte counter incremented per packet, the tag is 16 bytes.
/// </summary>
internal sealed class AesGcmProtector : PacketProtector
{
    private readonly AesGcm _gcm;
    private readonly byte[] _nonce;

    public AesGcmProtector(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv)
    {
        _gcm = new AesGcm(key, 16);
        _nonce = iv[..12].ToArray();
    }

    public override int BlockSize => 16;
    public override int MacLength => 16;
    public override bool LengthOutsideAlignment => true;

    private void NextNonce()
    {
        var counter = BinaryPrimitives.ReadUInt64BigEndian(_nonce.AsSpan(4));
        BinaryPrimitives.WriteUInt64BigEndian(_nonce.AsSpan(4), counter + 1);
    }

    public override void Seal(uint sequence, Span<byte> packet, Span<byte> mac)
    {
        _gcm.Encrypt(_nonce, packet[4..], packet[4..], mac, packet[..4]);
        NextNonce();
    }

    public override uint ReadLength(uint sequence, Span<byte> firstChunk) => BinaryPrimitives.ReadUInt32BigEndian(firstChunk);

    public override bool Open(uint sequence, Span<byte> packet, ReadOnlySpan<byte> mac)
    {
        try
        {
            _gcm.Decrypt(_nonce, packet[4..], mac, packet[4..], packet[..4]);
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
        NextNonce();
        return true;
    }

    public override void Dispose()
    {
        _gcm.Dispose();
        base.Dispose();
    }
}
