using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Http1;
using EdgeEru.Lb.Routing;
using EdgeEru.Lb.Transport;
using Microsoft.AspNetCore.WebUtilities;

namespace EdgeEru.Lb.FastPath;

/// <summary>
/// One client connection in the HTTP/1.1 fast path: reads request heads, answers them in order (pipelined ones
/// too), and hands the connection to Kestrel at the first request the fast path leaves to Kestrel. One async
/// loop per connection; a forwarded request's own awaits use pooled state machines (with many requests in
/// flight per loop the pool misses and they are allocated: about 1 KB per request, measured not to limit
/// throughput).
/// </summary>
internal sealed class FastPathConnection : IPeerWatcher, IDisposable
{
    private readonly Http1FastPath _fastPath;
    private readonly EpollSocket _socket;
    private readonly EndPoint? _local, _remote;
    private readonly HandOver _handOver;
    private readonly FastPathRequest _request;
    private readonly byte[] _in = new byte[FastPathRequest.MaxHead];
    private int _start, _end;
    private readonly HeadWriter _out = new(4096), _upstreamHead = new(1024);
    private UpstreamConnection? _exchanging; // the workload connection of the request in flight: aborted if the client leaves
    private long _deadline; // while waiting for the client (ms, Environment.TickCount64); 0: not waiting
    private bool _idle;     // waiting for a new request, nothing of it read yet
    private bool _headStarted; // the headers timeout runs for the request being read

    public FastPathConnection(Http1FastPath fastPath, Socket accepted, HandOver handOver)
    {
        _fastPath = fastPath;
        _local = accepted.LocalEndPoint;
        _remote = accepted.RemoteEndPoint;
        _handOver = handOver;
        var peer = (_remote as IPEndPoint)?.Address ?? IPAddress.None;
        _request = new FastPathRequest { Peer = peer, PeerText = peer.ToString(), Limits = fastPath.Limits };
        _socket = new EpollSocket(accepted) { Watcher = this };
    }

    public void Run() => _ = RunAsync();

    /// <summary>Closes the client connection (unless it was handed to Kestrel, which then owns it).</summary>
    public void Dispose()
    {
        _socket.Dispose();
        _out.Dispose();
        _upstreamHead.Dispose();
    }

    // Takes the connection, so the request's own end (which takes it back the same way) knows a late abort
    // may be on its way and does not pool it.
    public void PeerClosed() => Interlocked.Exchange(ref _exchanging, null)?.Abort();

    /// <summary>The sweep: closes the connection when it has waited too long for a request (or the host stops while it is idle).</summary>
    public void Expire(long now, bool draining)
    {
        var deadline = Volatile.Read(ref _deadline);
        if (deadline != 0 && (now > deadline || (draining && Volatile.Read(ref _idle)))) _socket.Shutdown();
    }

    private async Task RunAsync()
    {
        var handedOver = false;
        try
        {
            while (true)
            {
                HeadStatus status;
                while ((status = _request.Parse(_in, _start, _end)) == HeadStatus.Incomplete)
                {
                    // Full: the head so far moves to the front (a head as large as the buffer was Kestrel's above).
                    ResponseParser.MakeRoom(_in, ref _start, ref _end);
                    // Kestrel's two clocks: keep-alive while nothing of a request came; from its first byte, the
                    // whole head within the headers timeout (not per packet: a byte now and then does not extend it).
                    Volatile.Write(ref _idle, _end == 0);
                    if (_end == 0) Volatile.Write(ref _deadline, Environment.TickCount64 + _fastPath.KeepAliveMs);
                    else if (!_headStarted)
                    {
                        _headStarted = true;
                        Volatile.Write(ref _deadline, Environment.TickCount64 + _fastPath.HeadersMs);
                    }
                    if (_end == 0 && _fastPath.Draining) return;
                    var n = await _socket.ReceiveAsync(_in.AsMemory(_end));
                    if (n == 0) return; // FIN (or the sweep shut it)
                    _end += n;
                }
                Volatile.Write(ref _deadline, 0);
                Volatile.Write(ref _idle, false);
                _headStarted = false;
                if (status == HeadStatus.ForKestrel || !await AnswerAsync())
                {
                    _socket.Watcher = null;
                    await SendAsync(ReadOnlyMemory<byte>.Empty); // the answers kept so far go before Kestrel's
                    _handOver(_socket, _local, _remote, _in.AsMemory(_start, _end - _start).ToArray());
                    handedOver = true;
                    return;
                }
                Http1FastPath.Answered();
                _start += _request.Length;
                if (_start == _end) _start = _end = 0;
                if (Closing) return;
            }
        }
        catch (SocketException) { } // the client left or broke the connection
        catch (CloseConnection) { }
        catch (Exception e)
        {
            _fastPath.Log.LogError(e, "HTTP/1.1 fast path: connection from {Peer} failed", _request.PeerText);
        }
        finally
        {
            // What the last answers left with the loop goes out before the connection closes.
            if (!handedOver)
                try { await SendAsync(ReadOnlyMemory<byte>.Empty); }
                catch (SocketException) { }
            if (handedOver)
            {
                _out.Dispose();
                _upstreamHead.Dispose();
            }
            else Dispose();
            _fastPath.Ended(this, handedOver);
        }
    }

    /// <summary>The connection ends after this answer: the client asked, or the host is stopping.</summary>
    private bool Closing => _request.Close || _fastPath.Draining;

    /// <summary>Thrown where the answer cannot go on (a response cut short): the client connection closes.</summary>
    private sealed class CloseConnection : Exception;

    /// <summary>Answers the parsed request; false (before anything is done) when it is Kestrel's.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> AnswerAsync()
    {
        var started = Stopwatch.GetTimestamp();
        var routes = _fastPath.Routes.Current;
        var host = _request.Host();
        var graph = routes.Find(host);
        if (graph is null)
        {
            await SimpleAsync(404, null, $"no EdgeEru domain {host}\n");
            Log(404, started, null, null, null);
            return true;
        }
        if (!Http1FastPath.CanServe(graph)) return false;
        var decision = graph.Evaluate(_request);
        int status;
        Destination? destination = null;
        switch (decision.Terminal)
        {
            case RespondTerminal respond:
                status = respond.Status;
                await SimpleAsync(status, respond.ContentType, respond.Body);
                break;
            case RedirectTerminal redirect:
                status = redirect.Status;
                var location = redirect.Location("http", Encoding.ASCII.GetString(_request.Bytes(_request.HostRange)),
                    decision.RewrittenPath ?? _request.Path, Encoding.ASCII.GetString(_request.Bytes(_request.QueryRange)));
                await SimpleAsync(status, null, null, location);
                break;
            default:
                var backend = (BackendTerminal)decision.Terminal;
                bool broken;
                (status, destination, broken) = await ForwardAsync(routes.Pools(graph, backend), backend.Backend, decision.RewrittenPath);
                if (broken)
                {
                    // Counted and logged like any answer, then the client connection ends (its response is cut short).
                    RequestMetrics.Record(status, started, graph, decision.Terminal);
                    Log(status, started, graph, decision.Terminal, destination);
                    throw new CloseConnection();
                }
                break;
        }
        RequestMetrics.Record(status, started, graph, decision.Terminal);
        Log(status, started, graph, decision.Terminal, destination);
        return true;
    }

    /// <summary>
    /// Forwards to a destination of the backend; a failure to connect ejects it for a while and is retried on
    /// another (GET and HEAD are safe to retry) while nothing has been sent to the client.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(int Status, Destination? Destination, bool Broken)> ForwardAsync(BackendPools pools, BackendSettings backend, string? rewrittenPath)
    {
        var attempts = 1 + backend.Retries;
        var pool = pools.Choose();
        for (var attempt = 1; ; attempt++)
        {
            var destination = pool.Pick(backend.Policy);
            if (destination is null)
            {
                await SimpleAsync(503, null, "no live workload for this backend\n");
                return (503, null, false);
            }
            BuildUpstreamHead(backend.Edits, rewrittenPath, destination);
            destination.Begin();
            Outcome outcome;
            int status;
            try
            {
                (outcome, status) = await ExchangeAsync(destination, backend);
            }
            finally
            {
                destination.End();
            }
            switch (outcome)
            {
                case Outcome.Done:
                    return (status, destination, false);
                case Outcome.ConnectFailed or Outcome.TimedOut:
                    destination.Failed(outcome == Outcome.TimedOut ? "RequestTimedOut" : "Request", _fastPath.Log);
                    if (attempt < attempts) continue;
                    status = outcome == Outcome.TimedOut ? 504 : 502;
                    await SimpleAsync(status, null, null);
                    return (status, destination, false);
                case Outcome.BadResponse:
                    await SimpleAsync(502, null, null);
                    return (502, destination, false);
                default: // the client left, or the response broke after it started: the client connection ends
                    return (status == 0 ? 502 : status, destination, true);
            }
        }
    }

    private enum Outcome { Done, ConnectFailed, TimedOut, BadResponse, Broken }

    /// <summary>
    /// One request to the destination on a kept-alive connection (or a new one; a kept-alive one the workload
    /// had just closed is retried once on a new one), its answer relayed to the client as it comes.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(Outcome, int)> ExchangeAsync(Destination destination, BackendSettings backend)
    {
        var timeoutMs = backend.TimeoutMs;
        var isHead = _request.IsHead;
        for (var attempt = 0; ; attempt++)
        {
            var c = attempt == 0 ? UpstreamPool.Of(destination).Rent() : null;
            var reused = c is not null;
            if (c is null)
            {
                try
                {
                    using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    c = new UpstreamConnection(await EpollSocket.ConnectAsync(new IPEndPoint(IPAddress.Parse(destination.Address), destination.Port), connectTimeout.Token));
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or FormatException)
                {
                    return (Outcome.ConnectFailed, 0);
                }
            }
            var keep = false;
            var sent = false; // anything of the answer reached the client
            ResponseHead response = default;
            c.Begin(timeoutMs);
            Volatile.Write(ref _exchanging, c);
            try
            {
                if (_socket.PeerHasClosed) c.Abort(); // the client left before we started
                try
                {
                    await c.Socket.SendSoonAsync(_upstreamHead.Written);
                }
                catch (SocketException)
                {
                    if (c.Aborted && !c.TimedOut) return (Outcome.Broken, 0);
                    if (c.TimedOut) return (Outcome.TimedOut, 0);
                    if (reused && attempt == 0) continue;
                    return (Outcome.ConnectFailed, 0);
                }

                // The head (1xx interim responses skipped), its headers copied into the client's head.
                var buffer = c.Buffer;
                int start = 0, end = 0;
                while (true)
                {
                    if (end - start >= 12) // a status line's worth, at least
                    {
                        var span = buffer.AsSpan(start, end - start);
                        var interim = span[9] == '1';
                        bool complete;
                        try
                        {
                            if (interim)
                            {
                                var none = default(NoHeaders);
                                complete = ResponseParser.TryParse(span, isHead, ref none, out response);
                            }
                            else
                            {
                                // The status line first (read off the bytes: a head TryParse accepts has its code there).
                                _out.Clear();
                                if (System.Buffers.Text.Utf8Parser.TryParse(span.Slice(9, 3), out int code, out var used) && used == 3 && code is >= 100 and <= 999)
                                    _out.Append(StatusLine(code));
                                var sink = new ClientHeaders(_out, backend.Edits);
                                complete = ResponseParser.TryParse(span, isHead, ref sink, out response);
                                if (complete) FinishHead(response, sink.HasDate, backend.Edits, isHead);
                            }
                        }
                        catch (InvalidDataException) { return (Outcome.BadResponse, 0); }
                        if (complete)
                        {
                            if (!interim) break;
                            if (response.Status == 101) return (Outcome.BadResponse, 0);
                            start += response.Length;
                            continue;
                        }
                    }
                    if (!ResponseParser.MakeRoom(buffer, ref start, ref end)) return (Outcome.BadResponse, 0); // a head larger than the buffer
                    int n;
                    try
                    {
                        n = await c.Socket.ReceiveAsync(buffer.AsMemory(end));
                    }
                    catch (SocketException)
                    {
                        if (c.TimedOut) return (Outcome.TimedOut, 0);
                        if (c.Aborted) return (Outcome.Broken, 0);
                        if (end == 0 && reused && attempt == 0) goto again;
                        return (end == 0 ? Outcome.ConnectFailed : Outcome.BadResponse, 0);
                    }
                    if (n == 0)
                    {
                        if (end == 0 && start == 0 && reused && attempt == 0) goto again;
                        return (end == 0 && start == 0 ? Outcome.ConnectFailed : Outcome.BadResponse, 0);
                    }
                    end += n;
                    c.Touch();
                }
                start += response.Length;
                // Bytes beyond what the head announced: the two sides would disagree on where the next response starts.
                if ((response.Framing == BodyFraming.None && end != start)
                    || (response.Framing == BodyFraming.ContentLength && end - start > response.ContentLength))
                    return (Outcome.BadResponse, 0);

                // The body, as the workload frames it: a known length is relayed as is, anything else re-chunked.
                sent = true;
                var done = response.Framing switch
                {
                    BodyFraming.None => await SendOutAsync(),
                    BodyFraming.ContentLength => await RelayLengthAsync(c, response.ContentLength, start, end),
                    _ => await RelayChunksAsync(c, response.Framing == BodyFraming.Chunked, start, end),
                };
                if (!done) return (Outcome.Broken, response.Status);
                keep = response.KeepAlive && !c.Aborted;
                return (Outcome.Done, response.Status);
            }
            catch (SocketException) when (sent)
            {
                return (Outcome.Broken, response.Status);
            }
            finally
            {
                var ours = Interlocked.Exchange(ref _exchanging, null) == c;
                if (c.End() && ours && keep && c.Socket.IsQuiet) UpstreamPool.Of(destination).Return(c);
                else c.Dispose();
            }
        again:;
        }
    }

    /// <summary>The client's head, completed: status line, framing, Date (when the workload sent none), Connection.</summary>
    private void FinishHead(ResponseHead response, bool hasDate, HeaderEdits edits, bool isHead)
    {
        foreach (var (name, value) in edits.SetResponse) _out.Append(name).Append(": ").Append(value).Append("\r\n");
        if (response.ContentLength >= 0 && response.Status is not (204 or 304) && (response.Framing == BodyFraming.ContentLength || isHead))
            _out.Append("Content-Length: ").Append(response.ContentLength).Append("\r\n");
        else if (response.Framing is BodyFraming.Chunked or BodyFraming.UntilClose)
            _out.Append("Transfer-Encoding: chunked\r\n");
        if (!hasDate) _out.Append("Date: ").Append(HttpDate.Now()).Append("\r\n");
        if (Closing) _out.Append("Connection: close\r\n");
        _out.Append("\r\n");
    }

    /// <summary>The body of a known length: what came with the head goes out with it, the rest as it arrives.</summary>
    private async ValueTask<bool> RelayLengthAsync(UpstreamConnection c, long length, int start, int end)
    {
        var have = end - start; // not more than announced (checked before anything was sent)
        _out.Append(c.Buffer.AsSpan(start, have));
        await SendAsync(_out.Written);
        var remaining = length - have;
        while (remaining > 0)
        {
            int n;
            try
            {
                n = await c.Socket.ReceiveAsync(c.Buffer.AsMemory(0, (int)Math.Min(remaining, c.Buffer.Length)));
            }
            catch (SocketException) { return false; }
            if (n == 0) return false;
            remaining -= n;
            c.Touch();
            await SendAsync(c.Buffer.AsMemory(0, n));
        }
        return true;
    }

    /// <summary>A chunked body (or one that ends when the workload closes): sent on in chunks of what arrives.</summary>
    private async ValueTask<bool> RelayChunksAsync(UpstreamConnection c, bool chunked, int start, int end)
    {
        var buffer = c.Buffer;
        var decoder = new ChunkedDecoder();
        while (true)
        {
            if (chunked)
            {
                while (start < end && !decoder.Done)
                {
                    int used, dataStart, dataLength;
                    try { used = decoder.Step(buffer.AsSpan(start, end - start), out dataStart, out dataLength); }
                    catch (InvalidDataException) { return false; }
                    if (used == 0) break;
                    if (dataLength > 0) Chunk(buffer.AsSpan(start + dataStart, dataLength));
                    start += used;
                }
                if (decoder.Done)
                {
                    if (end != start) return false; // bytes beyond the response
                    _out.Append("0\r\n\r\n"u8);
                    await SendOutAsync();
                    return true;
                }
            }
            else if (end > start)
            {
                Chunk(buffer.AsSpan(start, end - start));
                start = end;
            }
            if (_out.Length > 0) await SendOutAsync();
            if (start == end) start = end = 0;
            if (!ResponseParser.MakeRoom(buffer, ref start, ref end)) return false; // a framing line longer than the buffer
            int n;
            try { n = await c.Socket.ReceiveAsync(buffer.AsMemory(end)); }
            catch (SocketException) { return false; }
            if (n == 0)
            {
                if (chunked) return false;
                _out.Append("0\r\n\r\n"u8); // until close: the workload's FIN ends the body
                await SendOutAsync();
                return true;
            }
            end += n;
            c.Touch();
        }
    }

    private void Chunk(ReadOnlySpan<byte> data) => _out.Append(data.Length, 'X').Append("\r\n"u8).Append(data).Append("\r\n"u8);

    private async ValueTask<bool> SendOutAsync()
    {
        await SendAsync(_out.Written);
        _out.Clear();
        return true;
    }

    /// <summary>
    /// To the client. A send that has to wait for room gets Kestrel's minimum response rate (240 bytes/s after
    /// a 5 s grace): a client that stops reading is closed by the sweep, not kept forever.
    /// </summary>
    private ValueTask SendAsync(ReadOnlyMemory<byte> data)
    {
        var send = _socket.SendSoonAsync(data);
        return send.IsCompletedSuccessfully ? default : WaitSentAsync(send, data.Length);
    }

    private async ValueTask WaitSentAsync(ValueTask send, int length)
    {
        Volatile.Write(ref _deadline, Environment.TickCount64 + _fastPath.MinSendGraceMs + length * 1000L / _fastPath.MinSendBytesPerSecond);
        try { await send; }
        finally { Volatile.Write(ref _deadline, 0); }
    }

    /// <summary>An answer of the LB's own (404, 503, 502, respond and redirect nodes).</summary>
    private async ValueTask SimpleAsync(int status, string? contentType, string? body, string? location = null)
    {
        _out.Clear();
        _out.Append(StatusLine(status));
        if (contentType is not null) _out.Append("Content-Type: ").Append(contentType).Append("\r\n");
        if (location is not null) _out.Append("Location: ").Append(location).Append("\r\n");
        // 1xx, 204 and 304 have no body, not even an empty one (a length would be read as the next response's).
        var bodyless = status is < 200 or 204 or 304;
        var bytes = body is null || bodyless ? [] : Encoding.UTF8.GetBytes(body);
        if (!bodyless) _out.Append("Content-Length: ").Append(bytes.Length).Append("\r\n");
        _out.Append("Date: ").Append(HttpDate.Now()).Append("\r\n");
        if (Closing) _out.Append("Connection: close\r\n");
        _out.Append("\r\n");
        if (!_request.IsHead) _out.Append(bytes);
        await SendOutAsync();
    }

    /// <summary>
    /// The request head as the workload gets it: as on the Kestrel way (hop-by-hop headers dropped, the LB's
    /// X-Forwarded-*, the backend's header edits), from the client's bytes.
    /// </summary>
    private void BuildUpstreamHead(HeaderEdits edits, string? rewrittenPath, Destination destination)
    {
        var r = _request;
        var h = _upstreamHead;
        h.Clear();
        h.Append(r.IsHead ? "HEAD "u8 : "GET "u8);
        if (rewrittenPath is null) h.Append(r.Bytes(r.TargetRange));
        else h.Append(new PathString(rewrittenPath).ToUriComponent()).Append(r.Bytes(r.QueryRange));
        h.Append(" HTTP/1.1\r\nHost: "u8).Append(destination.Authority).Append("\r\n"u8);
        string? priorFor = null;
        for (var i = 0; i < r.HeaderCount; i++)
        {
            var name = r.Name(i);
            if (Ascii.EqualsIgnoreCase(name, "X-Forwarded-For"u8))
            {
                var v = Encoding.ASCII.GetString(r.Value(i));
                priorFor = priorFor is null ? v : priorFor + "," + v;
            }
            if (!FastPathRequest.IsEndToEnd(name) || edits.RemovesRequest(name) || edits.SetsRequest(name)) continue;
            h.Append(name).Append(": "u8).Append(r.Value(i)).Append("\r\n"u8);
        }
        if (!edits.RemovesRequest(ForwardedHeaders.For))
            h.Append("X-Forwarded-For: "u8).Append(priorFor is null ? r.PeerText : $"{priorFor}, {r.PeerText}").Append("\r\n"u8);
        if (!edits.RemovesRequest(ForwardedHeaders.Proto)) h.Append("X-Forwarded-Proto: http\r\n"u8);
        if (!edits.RemovesRequest(ForwardedHeaders.Host)) h.Append("X-Forwarded-Host: "u8).Append(r.Bytes(r.HostRange)).Append("\r\n"u8);
        foreach (var (name, value) in edits.SetRequest) h.Append(name).Append(": ").Append(value).Append("\r\n");
        h.Append("\r\n"u8);
    }

    private void Log(int status, long started, RuleGraph? graph, Terminal? terminal, Destination? destination)
    {
        if (!_fastPath.AccessLog.Enabled) return;
        var r = _request;
        _fastPath.AccessLog.Write(new AccessLog.AccessEntry(
            DateTime.UtcNow, r.PeerText, r.Method, Encoding.ASCII.GetString(r.Bytes(r.HostRange)), r.Target, "HTTP/1.1", status,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds, graph?.Domain.Name, terminal?.Id,
            destination is null ? null : $"{destination.Address}:{destination.Port}", destination?.WorkloadId, r.Header("User-Agent")));
    }

    private static readonly byte[]?[] StatusLines = new byte[1000][];

    /// <summary>"HTTP/1.1 200 OK\r\n", made once per code.</summary>
    private static byte[] StatusLine(int status) => StatusLines[status] ??= Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n");

    /// <summary>The workload's end-to-end headers, copied as they came, except those the backend sets itself.</summary>
    private struct ClientHeaders(HeadWriter head, HeaderEdits edits) : IHeaderSink
    {
        public bool HasDate { get; private set; }

        public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            if (edits.SetsResponse(name)) return;
            if (Ascii.EqualsIgnoreCase(name, "Date"u8)) HasDate = true;
            head.Append(name).Append(": "u8).Append(value).Append("\r\n"u8);
        }
    }
}
