using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// A message head being written: Latin-1 text and raw bytes into a pooled buffer that grows (header values
/// from Kestrel and from the fast path's parser hold no CR or LF).
/// </summary>
internal sealed class HeadWriter : IDisposable
{
    [ThreadStatic] private static HeadWriter? _current;

    /// <summary>This thread's writer, started afresh in a newly rented buffer the caller returns to the pool.</summary>
    public static HeadWriter ForThisThread()
    {
        var w = _current ??= new HeadWriter();
        w.Buffer = ArrayPool<byte>.Shared.Rent(1024);
        w.Length = 0;
        return w;
    }

    /// <summary>A writer of one's own, whose buffer is kept from one message to the next.</summary>
    public HeadWriter(int size = 0) => Buffer = size == 0 ? [] : ArrayPool<byte>.Shared.Rent(size);

    public byte[] Buffer { get; private set; }
    public int Length { get; private set; }
    public ReadOnlyMemory<byte> Written => Buffer.AsMemory(0, Length);

    public void Clear() => Length = 0;

    /// <summary>A writer of one's own gives its buffer back (not one of <see cref="ForThisThread"/>, whose caller does).</summary>
    public void Dispose()
    {
        if (Buffer.Length > 0) ArrayPool<byte>.Shared.Return(Buffer);
        Buffer = [];
        Length = 0;
    }

    public HeadWriter Append(string? text)
    {
        if (string.IsNullOrEmpty(text)) return this;
        Length += Encoding.Latin1.GetBytes(text, Room(text.Length));
        return this;
    }

    public HeadWriter Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Room(bytes.Length));
        Length += bytes.Length;
        return this;
    }

    public HeadWriter Append(long number, char format = 'D')
    {
        Utf8Formatter.TryFormat(number, Room(20), out var n, new StandardFormat(format));
        Length += n;
        return this;
    }

    /// <summary>At least <paramref name="size"/> bytes free after what is written.</summary>
    private Span<byte> Room(int size)
    {
        if (Length + size > Buffer.Length)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(Math.Max(Buffer.Length * 2, 1024), Length + size));
            Buffer.AsSpan(0, Length).CopyTo(grown);
            if (Buffer.Length > 0) ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = grown;
        }
        return Buffer.AsSpan(Length);
    }
}
