using System.Buffers.Binary;
using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace EdgeEru.Ssh.Crypto;

/// <summary>
/// chacha20-poly1305@openssh.com (OpenSSH PROTOCOL.chacha20poly1305): a 64-byte key, K_2 (first half) for the payload
/// and K_1 (second half) for the length; the nonce is the sequence number; the Poly1305 key is the first 32 bytes of
/// K_2's block 0 and the payload uses blocks from 1. The tag covers the encrypted length and payload.
/// </summary>
internal sealed class ChaCha20Poly1305Protector : PacketProtector
{
    private readonly byte[] _mainKey;
    private readonly byte[] _headerKey;
    private readonly byte[] _nonce = new byte[12];
    private readonly byte[] _polyKey = new byte[64];
    private readonly byte[] _tag = new byte[16];
    private readonly ChaCha7539Engine _engine = new();
    private readonly Poly1305 _poly = new();

    public ChaCha20Poly1305Protector(ReadOnlySpan<byte> key)
    {
        if (key.Length != 64) throw new ArgumentException("chacha20-poly1305 needs a 64-byte key", nameof(key));
        _mainKey = key[..32].ToArray();
        _headerKey = key[32..].ToArray();
    }

    public override int BlockSize => 8;
    public override int MacLength => 16;
    public override bool LengthOutsideAlignment => true;

    // The original ChaCha20 (64-bit counter, 64-bit nonce) equals the IETF one with a nonce of 4 zero bytes and the
    // 8-byte nonce, as long as the counter stays below 2^32 (packets are far shorter): this lets us use the fast engine.
    private void Start(byte[] key, uint sequence)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_nonce.AsSpan(4), sequence);
        _engine.Init(true, new ParametersWithIV(new KeyParameter(key), _nonce));
    }

    private void PolyKey(uint sequence)
    {
        Start(_mainKey, sequence);
        Array.Clear(_polyKey);
        _engine.ProcessBytes(_polyKey, _polyKey); // block 0; the engine now stands at block 1
    }

    private void Tag(ReadOnlySpan<byte> data, Span<byte> tag)
    {
        _poly.Init(new KeyParameter(_polyKey, 0, 32));
        _poly.BlockUpdate(data);
        _poly.DoFinal(tag);
    }

    public override void Seal(uint sequence, Span<byte> packet, Span<byte> mac)
    {
        Start(_headerKey, sequence);
        _engine.ProcessBytes(packet[..4], packet[..4]);
        PolyKey(sequence);
        _engine.ProcessBytes(packet[4..], packet[4..]);
        Tag(packet, mac);
    }

    public override uint ReadLength(uint sequence, Span<byte> firstChunk)
    {
        Span<byte> len = stackalloc byte[4];
        Start(_headerKey, sequence);
        _engine.ProcessBytes(firstChunk[..4], len); // the tag covers the encrypted length: leave it as it came
        return BinaryPrimitives.ReadUInt32BigEndian(len);
    }

    public override bool Open(uint sequence, Span<byte> packet, ReadOnlySpan<byte> mac)
    {
        PolyKey(sequence);
        Tag(packet, _tag);
        if (!CryptographicOperations.FixedTimeEquals(_tag, mac)) return false;
        _engine.ProcessBytes(packet[4..], packet[4..]);
        Start(_headerKey, sequence);
        _engine.ProcessBytes(packet[..4], packet[..4]);
        return true;
    }
}
