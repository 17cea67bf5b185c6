using EdgeEru.Lb.Backends;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// The client's side of an <see cref="Http1Exchange"/>: it writes the request head from the request it holds,
/// and takes the workload's answer in its own framing (Kestrel's response, or the fast path's bytes on the
/// client's socket). A struct for each, so the exchange is compiled once per way and calls it directly.
/// Body calls answer false once the client has left.
/// </summary>
internal interface IExchangeClient : IResponseHeadSink
{
    /// <summary>Writes the request head for <paramref name="destination"/> (with <see cref="UpstreamHead"/>).</summary>
    void WriteRequestHead(HeadWriter head, Destination destination);

    /// <summary>From now on the client's leaving aborts <paramref name="connection"/> (at once, if it has left already).</summary>
    void Watch(UpstreamConnection connection);

    /// <summary>No more; false when an abort may still be on its way (the connection is not pooled then).</summary>
    bool Unwatch(UpstreamConnection connection);

    /// <summary>
    /// Whether the workload's interim (1xx) answers go on to the client, as RFC 9110 §15.2 asks of a proxy: then each
    /// one's status and headers go to <see cref="IResponseHeadSink"/> too, followed by <see cref="EndInterim"/> and
    /// <see cref="FlushAsync"/>; else they are read and dropped.
    /// </summary>
    bool TakesInterim { get; }

    /// <summary>An interim answer's head is complete.</summary>
    void EndInterim();

    /// <summary>The workload's head is complete (its status and headers went to <see cref="IResponseHeadSink"/>).</summary>
    void EndHead(in ResponseHead head);

    /// <summary>Body bytes as the workload meant them (chunk framing removed), to be framed the client's way.</summary>
    void Write(ReadOnlySpan<byte> data);

    /// <summary>What was written goes to the client.</summary>
    ValueTask<bool> FlushAsync();

    /// <summary>
    /// Where the next piece of the body is read: the client's own output buffer when it has one, else <paramref name="own"/>.
    /// </summary>
    Memory<byte> ReadBuffer(Memory<byte> own);

    /// <summary>A piece read into <see cref="ReadBuffer"/> goes to the client.</summary>
    ValueTask<bool> RelayAsync(Memory<byte> piece);

    /// <summary>The body is complete: what is left goes to the client.</summary>
    ValueTask<bool> EndBodyAsync(in ResponseHead head);
}
