using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EdgeEru.Ssh.Crypto;

/// <summary>
/// aesNNN-ctr with an HMAC: classic encrypt-and-MAC (RFC 4253 §6.4: MAC over sequence number and plaintext packet)
/// or OpenSSH's encrypt-then-MAC (*-etm@openssh.com: length in clear, MAC over sequence number, length and ciphertext).
/// </summary>
internal sealed class CtrHmacProtector : PacketProtector
{
    private readonly AesCtr _ctr;
    private readonly IncrementalHash _hmac;
    private readonly int _macLength;
    private readonly bool _etm;
    private readonly byte[] _mac;

    public CtrHmacProtector(
        ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, HashAlgorithmName hash, ReadOnlySpan<byte> macKey, int macLength, bool etm)
    {
        _ctr = new AesCtr(key, iv);
        _hmac = IncrementalHash.CreateHMAC(hash, macKey);
        _macLength = macLength;
        _etm = etm;
        _mac = new byte[macLength];
    }

    public override int BlockSize => 16;
    public override int MacLength => _macLength;
    public override bool LengthOutsideAlignment => _etm;

    private void Mac(uint sequence, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        Span<byte> seq = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(seq, sequence);
        _hmac.AppendData(seq);
        _hmac.AppendData(data);
        _hmac.GetHashAndReset(mac);
    }

    public override void Seal(uint sequence, Span<byte> packet, Span<byte> mac)
    {
        if (_etm)
        {
            _ctr.Transform(packet[4..], packet[4..]);
            Mac(sequence, packet, mac);
        }
        else
        {
            Mac(sequence, packet, mac);
            _ctr.Transform(packet, packet);
        }
    }

    public override uint ReadLength(uint sequence, Span<byte> firstChunk)
    {
        if (!_etm) _ctr.Transform(firstChunk, firstChunk); // the first block stays decrypted; Open goes on from there
        return BinaryPrimitives.ReadUInt32BigEndian(firstChunk);
    }

    public override bool Open(uint sequence, Span<byte> packet, ReadOnlySpan<byte> mac)
    {
        if (_etm)
        {
            Mac(sequence, packet, _mac);
            if (!CryptographicOperations.FixedTimeEquals(_mac, mac)) return false;
            _ctr.Transform(packet[4..], packet[4..]);
            return true;
        }
        _ctr.Transform(packet[BlockSize..], packet[BlockSize..]);
        Mac(sequence, packet, _mac);
        return CryptographicOperations.FixedTimeEquals(_mac, mac);
    }

    public override void Dispose()
    {
        _ctr.Dispose();
        _hmac.Dispose();
        base.Dispose();
    }
}
