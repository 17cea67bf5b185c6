namespace EdgeEru.Lb.Http1;

/// <summary>
/// Bytes read from a socket and not yet handed on: <c>Buffer[Start..End]</c>, with room to read more after them.
/// One per connection (a client's on the fast path, a workload's in an exchange), reused for each message.
/// </summary>
internal sealed class ReadBuffer(int size)
{
    public byte[] Buffer { get; } = new byte[size];
    public int Start { get; private set; }
    public int End { get; private set; }

    public ReadOnlySpan<byte> Unread => Buffer.AsSpan(Start, End - Start);
    public int UnreadLength => End - Start;

    /// <summary>Where the next read goes.</summary>
    public Memory<byte> Free => Buffer.AsMemory(End);

    public void Filled(int n) => End += n;

    /// <summary>The first <paramref name="n"/> unread bytes are handled; when none is left, reading starts over at the front.</summary>
    public void Consume(int n)
    {
        Start += n;
        if (Start == End) Start = End = 0;
    }

    public void ConsumeAll() => Start = End = 0;

    public void Clear() => Start = End = 0;

    /// <summary>
    /// Room to read more: when the buffer is full, the unread bytes move to its front; false when they fill all of
    /// it (a head or framing line larger than the buffer).
    /// </summary>
    public bool MakeRoom()
    {
        if (End < Buffer.Length) return true;
        if (Start == 0) return false;
        System.Buffer.BlockCopy(Buffer, Start, Buffer, 0, End - Start);
        End -= Start;
        Start = 0;
        return true;
    }
}
