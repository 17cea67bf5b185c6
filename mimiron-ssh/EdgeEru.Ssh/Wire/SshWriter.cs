using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace EdgeEru.Ssh.Wire;

/// <summary>Builds SSH wire data (RFC 4251 §5): byte, boolean, uint32, uint64, string, mpint, name-list.</summary>
public sealed class SshWriter : IBufferWriter<byte>
{
    private byte[] _buffer;
    private int _length;

    public SshWriter(int capacity = 256) => _buffer = new byte[Math.Max(16, capacity)];

    public int Length => _length;
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);
    public byte[] ToArray() => WrittenSpan.ToArray();
    public void Clear() => _length = 0;

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(Math.Max(1, sizeHint));
        return _buffer.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(Math.Max(1, sizeHint));
        return _buffer.AsSpan(_length);
    }

    private void Ensure(int more)
    {
        if (_length + more <= _buffer.Length) return;
        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
    }

    public SshWriter Byte(byte b)
    {
        Ensure(1);
        _buffer[_length++] = b;
        return this;
    }

    public SshWriter Boolean(bool b) => Byte(b ? (byte)1 : (byte)0);

    public SshWriter UInt32(uint v)
    {
        Ensure(4);
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_length), v);
        _length += 4;
        return this;
    }

    public SshWriter UInt64(ulong v)
    {
        Ensure(8);
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.AsSpan(_length), v);
        _length += 8;
        return this;
    }

    public SshWriter Raw(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
        return this;
    }

    public SshWriter String(ReadOnlySpan<byte> bytes) => UInt32((uint)bytes.Length).Raw(bytes);

    public SshWriter String(string s)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        UInt32((uint)n);
        Ensure(n);
        _length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(_length));
        return this;
    }

    public SshWriter NameList(IEnumerable<string> names) => String(string.Join(',', names));

    /// <summary>An mpint from the unsigned big-endian magnitude (leading zeros dropped, a 0x00 added when the top bit is set).</summary>
    public SshWriter MpintUnsigned(ReadOnlySpan<byte> bigEndian)
    {
        var i = 0;
        while (i < bigEndian.Length && bigEndian[i] == 0) i++;
        var magnitude = bigEndian[i..];
        if (magnitude.Length == 0) return UInt32(0);
        var pad = (magnitude[0] & 0x80) != 0 ? 1 : 0;
        UInt32((uint)(magnitude.Length + pad));
        if (pad == 1) Byte(0);
        return Raw(magnitude);
    }

    /// <summary>An mpint in two's complement (RFC 4251 §5), for any sign.</summary>
    public SshWriter Mpint(BigInteger v)
    {
        if (v.IsZero) return UInt32(0);
        return String(v.ToByteArray(isUnsigned: false, isBigEndian: true));
    }

    /// <summary>Writes a nested structure as one SSH string (e.g. a key blob or a signature).</summary>
    public SshWriter Nested(Action<SshWriter> build)
    {
        var inner = new SshWriter();
        build(inner);
        return String(inner.WrittenSpan);
    }
}
