using System.Net.Sockets;
using System.Text;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Http1;
using EdgeEru.Lb.Routing;

namespace EdgeEru.Lb.FastPath;

/// <summary>
/// A fast-path connection's side of forwarding: the forward loop and the HTTP/1.1 exchange are the Kestrel way's;
/// what is the fast path's own is that the request comes from the client's bytes and the answer goes back as
/// bytes, framed as the workload framed it (a length as is, chunks or until-close re-chunked).
/// </summary>
internal sealed partial class FastPathConnection
{
    private UpstreamConnection? _exchanging; // the workload connection of the request in flight: aborted if the client leaves
    private int _status;          // the answer's status (0: none yet)
    private bool _answerStarted;  // the workload's head went into the client's answer: no other destination may be tried
    private bool _hasDate;        // the workload sent a Date header
    private bool _chunking;       // the body goes to the client in chunks

    // Takes the connection, so the request's own end (which takes it back the same way) knows a late abort
    // may be on its way and does not pool it.
    public void PeerClosed() => Interlocked.Exchange(ref _exchanging, null)?.Abort();

    /// <summary>The client's side of one forwarded request, for the forward loop and the exchange.</summary>
    private readonly struct ClientSide(
        FastPathConnection connection, BackendTerminal terminal, string? rewrittenPath, long started, RuleGraph graph)
        : IForwardingClient, IExchangeClient
    {
        public ValueTask<ForwardOutcome> SendAsync(Destination destination)
        {
            connection._status = 0;
            connection._answerStarted = false;
            return Http1Exchange.RunAsync(destination, connection._request.IsHead, terminal.Backend.TimeoutMs, this);
        }

        public bool CanRetry => !connection._answerStarted;

        public void Reset() { }

        public ValueTask FailAsync(ForwardOutcome outcome) => outcome switch
        {
            ForwardOutcome.NoDestination => connection.FailAsync(503, "no live workload for this backend\n"),
            ForwardOutcome.Unreachable or ForwardOutcome.BadResponse => connection.FailAsync(502, null),
            ForwardOutcome.TimedOut => connection.FailAsync(504, null),
            _ => default, // the client left, or its answer broke: the connection closes once the request is recorded
        };

        public void Record(Destination? destination) =>
            connection.Record(connection._status == 0 ? 502 : connection._status, started, graph, terminal, destination);

        /// <summary>
        /// The request head as the workload gets it, from the client's bytes (the rules are <see cref="UpstreamHead"/>'s).
        /// </summary>
        public void WriteRequestHead(HeadWriter writer, Destination destination)
        {
            var r = connection._request;
            var head = new UpstreamHead(writer, terminal.Backend.Edits);
            head.Method(r.IsHead ? "HEAD"u8 : "GET"u8);
            if (rewrittenPath is null) head.Target(r.Bytes(r.TargetRange));
            else
            {
                head.Target(new PathString(rewrittenPath).ToUriComponent());
                head.Target(r.Bytes(r.QueryRange));
            }
            head.Host(destination.Authority);
            for (var i = 0; i < r.HeaderCount; i++) head.Header(r.Name(i), r.Value(i));
            head.End(r.PeerText, "http", r.Bytes(r.HostRange));
        }

        public void Watch(UpstreamConnection c)
        {
            Volatile.Write(ref connection._exchanging, c);
            if (connection._socket.PeerHasClosed) c.Abort(); // the client left before we started
        }

        public bool Unwatch(UpstreamConnection c) => Interlocked.Exchange(ref connection._exchanging, null) == c;

        // Interim answers go on to the client (RFC 9110 §15.2: the fast path takes only HTTP/1.1 clients, and never
        // sends Expect itself, so every 1xx is the workload's own to pass on).
        public bool TakesInterim => true;

        public void EndInterim() => connection._out.Append("\r\n"u8);

        public void Status(int status)
        {
            if (status < 200) connection.StartInterim(status);
            else connection.StartAnswer(status);
        }

        public void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
            connection.AnswerHeader(name, value, terminal.Backend.Edits);

        public void EndHead(in ResponseHead head) => connection.EndAnswerHead(head, terminal.Backend.Edits);

        public void Write(ReadOnlySpan<byte> data) => connection.AnswerBody(data);

        public ValueTask<bool> FlushAsync() => connection.TrySendOutAsync();

        // The workload connection's buffer: the send copies what it holds into the loop's arena.
        public Memory<byte> ReadBuffer(Memory<byte> own) => own;

        public ValueTask<bool> RelayAsync(Memory<byte> piece) => connection.RelayAsync(piece);

        public ValueTask<bool> EndBodyAsync(in ResponseHead head) => connection.EndAnswerAsync();
    }

    /// <summary>The LB's own answer to a failed forward.</summary>
    private ValueTask FailAsync(int status, string? body)
    {
        _status = status;
        return SimpleAsync(status, null, body);
    }

    /// <summary>An interim status line: its head goes to the client on its own, before the final answer's.</summary>
    private void StartInterim(int status)
    {
        _out.Clear();
        _out.Append(StatusLine(status));
    }

    /// <summary>The workload's status line, in the client's answer.</summary>
    private void StartAnswer(int status)
    {
        _out.Clear();
        _out.Append(StatusLine(status));
        _status = status;
        _hasDate = false;
    }

    /// <summary>The workload's end-to-end headers, copied as they came, except those the backend sets itself.</summary>
    private void AnswerHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HeaderEdits edits)
    {
        if (edits.SetsResponse(name)) return;
        if (Ascii.EqualsIgnoreCase(name, "Date"u8)) _hasDate = true;
        _out.Append(name).Append(": "u8).Append(value).Append("\r\n"u8);
    }

    /// <summary>The client's head, completed: the backend's headers, framing, Date (when the workload sent none), Connection.</summary>
    private void EndAnswerHead(in ResponseHead head, HeaderEdits edits)
    {
        foreach (var (name, value) in edits.SetResponse) _out.Append(name).Append(": ").Append(value).Append("\r\n");
        _chunking = false;
        if (head.ContentLength >= 0 && head.Status is not (204 or 304) && (head.Framing == BodyFraming.ContentLength || _request.IsHead))
            _out.Append("Content-Length: ").Append(head.ContentLength).Append("\r\n");
        else if (head.Framing is BodyFraming.Chunked or BodyFraming.UntilClose)
        {
            _out.Append("Transfer-Encoding: chunked\r\n");
            _chunking = true;
        }
        if (!_hasDate) _out.Append("Date: ").Append(HttpDate.Now()).Append("\r\n");
        if (Closing) _out.Append("Connection: close\r\n");
        _out.Append("\r\n");
        _answerStarted = true;
    }

    /// <summary>Body bytes: as they are after a length, each run as a chunk otherwise.</summary>
    private void AnswerBody(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        if (_chunking) _out.Append(data.Length, 'X').Append("\r\n"u8).Append(data).Append("\r\n"u8);
        else _out.Append(data);
    }

    /// <summary>A piece read from the workload: sent as it is, or as a chunk.</summary>
    private ValueTask<bool> RelayAsync(Memory<byte> piece)
    {
        if (!_chunking) return TrySendAsync(piece, clearOut: false);
        AnswerBody(piece.Span);
        return TrySendOutAsync();
    }

    /// <summary>The answer is whole: the last chunk, and what is left.</summary>
    private ValueTask<bool> EndAnswerAsync()
    {
        if (_chunking) _out.Append("0\r\n\r\n"u8);
        return TrySendOutAsync();
    }

    /// <summary>What the answer holds so far, to the client: false when the client has gone.</summary>
    private ValueTask<bool> TrySendOutAsync() => _out.Length == 0 ? new(true) : TrySendAsync(_out.Written, clearOut: true);

    private ValueTask<bool> TrySendAsync(ReadOnlyMemory<byte> data, bool clearOut)
    {
        ValueTask send;
        try
        {
            send = SendAsync(data);
        }
        catch (SocketException)
        {
            return new(false);
        }
        if (!send.IsCompletedSuccessfully) return AwaitSentAsync(send, clearOut);
        if (clearOut) _out.Clear();
        return new(true);
    }

    private async ValueTask<bool> AwaitSentAsync(ValueTask send, bool clearOut)
    {
        try
        {
            await send;
        }
        catch (SocketException)
        {
            return false;
        }
        if (clearOut) _out.Clear();
        return true;
    }
}
