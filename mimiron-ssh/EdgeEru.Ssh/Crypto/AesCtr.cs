using System.Security.Cryptography;

namespace EdgeEru.Ssh.Crypto;

/// <summary>AES in counter mode (RFC 4344 §4): the IV is a 128-bit big-endian counter, one keystream block per counter value.</summary>
internal sealed class AesCtr : IDisposable
{
    private const int Batch = 1024; // blocks of keystream made per AES call
    private readonly Aes _aes;
    private readonly byte[] _counter;
    private readonly byte[] _counters = new byte[Batch * 16];
    private readonly byte[] _stream = new byte[Batch * 16];
    private int _streamPos = Batch * 16; // unused keystream bytes left over from the last call

    public AesCtr(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv)
    {
        _aes = Aes.Create();
        _aes.Key = key.ToArray();
        _counter = iv[..16].ToArray();
    }

    public void Transform(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var done = 0;
        while (done < input.Length)
        {
            if (_streamPos == _stream.Length) Refill(input.Length - done);
            var n = Math.Min(input.Length - done, _stream.Length - _streamPos);
            var ks = _stream.AsSpan(_streamPos, n);
            for (var i = 0; i < n; i++) output[done + i] = (byte)(input[done + i] ^ ks[i]);
            _streamPos += n;
            done += n;
        }
    }

    private void Refill(int wanted)
    {
        // SSH packets are whole blocks, so keystream is made for just the blocks needed (at most a batch).
        var blocks = Math.Min(Batch, (wanted + 15) / 16);
        for (var b = 0; b < blocks; b++)
        {
            _counter.CopyTo(_counters, b * 16);
            for (var i = 15; i >= 0 && ++_counter[i] == 0; i--) { }
        }
        var start = _stream.Length - blocks * 16;
        _aes.EncryptEcb(_counters.AsSpan(0, blocks * 16), _stream.AsSpan(start), PaddingMode.None);
        _streamPos = start;
    }

    public void Dispose() => _aes.Dispose();
}
