using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
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
/// throughput). Forwarding is in FastPathConnection.Forwarding.cs.
/// </summary>
internal sealed partial class FastPathConnection : IPeerWatcher, IDisposable
{
    private readonly Http1FastPath _fastPath;
    private readonly EpollSocket _socket;
    private readonly EndPoint? _local, _remote;
    private readonly HandOver _handOver;
    private readonly FastPathRequest _request;
    private readonly ReadBuffer _in = new(FastPathRequest.MaxHead);
    private readonly HeadWriter _out = new(4096); // the answer's bytes not sent yet
    private long _deadline; // while waiting for the client (ms, Environment.TickCount64); 0: not waiting
    private bool _idle;     // waiting for a new request, nothing of it read yet
    private bool _headStarted; // the headers timeout runs for the request being read

    public FastPathConnection(Http1FastPath fastPath, Socket accepted, HandOver handOver)
    {
        _fastPath = fastPath;
        _local = accepted.LocalEndPoint;
        _remote = Peers.Plain(accepted.RemoteEndPoint);
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
    }

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
                while ((status = _request.Parse(_in.Buffer, _in.Start, _in.End)) == HeadStatus.Incomplete)
                {
                    // Full: the head so far moves to the front (a head as large as the buffer was Kestrel's above).
                    _in.MakeRoom();
                    // Kestrel's two clocks: keep-alive while nothing of a request came; from its first byte, the
                    // whole head within the headers timeout (not per packet: a byte now and then does not extend it).
                    Volatile.Write(ref _idle, _in.End == 0);
                    if (_in.End == 0) Volatile.Write(ref _deadline, Environment.TickCount64 + _fastPath.KeepAliveMs);
                    else if (!_headStarted)
                    {
                        _headStarted = true;
                        Volatile.Write(ref _deadline, Environment.TickCount64 + _fastPath.HeadersMs);
                    }
                    if (_in.End == 0 && _fastPath.Draining) return;
                    var n = await _socket.ReceiveAsync(_in.Free);
                    if (n == 0) return; // FIN (or the sweep shut it)
                    _in.Filled(n);
                }
                Volatile.Write(ref _deadline, 0);
                Volatile.Write(ref _idle, false);
                _headStarted = false;
                if (status == HeadStatus.ForKestrel || !await AnswerAsync())
                {
                    _socket.Watcher = null;
                    await SendAsync(ReadOnlyMemory<byte>.Empty); // the answers kept so far go before Kestrel's
                    _handOver(_socket, _local, _remote, _in.Unread.ToArray());
                    handedOver = true;
                    return;
                }
                Http1FastPath.Answered();
                _in.Consume(_request.Length);
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
            if (handedOver) _out.Dispose();
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
        if (Acme.ChallengeResponder.IsChallenge(_request.Path)) return false; // answered from the registry, on Kestrel
        var routes = _fastPath.Routes.Current;
        var host = _request.Host();
        var graph = routes.Find(host);
        if (graph is null)
        {
            await SimpleAsync(404, null, $"no EdgeEru domain {host}\n");
            Record(404, started, null, null, null);
            return true;
        }
        if (!Http1FastPath.CanServe(graph)) return false;
        var decision = graph.Evaluate(_request);
        switch (decision.Terminal)
        {
            case RespondTerminal respond:
                await SimpleAsync(respond.Status, respond.ContentType, respond.Body);
                Record(respond.Status, started, graph, respond, null);
                return true;
            case RedirectTerminal redirect:
                var location = redirect.Location("http", Encoding.ASCII.GetString(_request.Bytes(_request.HostRange)),
                    decision.RewrittenPath ?? _request.Path, Encoding.ASCII.GetString(_request.Bytes(_request.QueryRange)));
                await SimpleAsync(redirect.Status, null, null, location);
                Record(redirect.Status, started, graph, redirect, null);
                return true;
            default:
                var backend = (BackendTerminal)decision.Terminal;
                var outcome = await ForwardLoop.RunAsync(new ClientSide(this, backend, decision.RewrittenPath, started, graph),
                    routes.Pools(graph, backend), backend.Backend, 1 + backend.Backend.Retries, null, _fastPath.Log);
                // Counted and logged like any answer (by the loop); a response cut short then ends the client connection.
                if (outcome is ForwardOutcome.ClientGone or ForwardOutcome.BodyBroken) throw new CloseConnection();
                return true;
        }
    }

    /// <summary>Metrics and the access-log line of an answered request.</summary>
    private void Record(int status, long started, RuleGraph? graph, Terminal? terminal, Backends.Destination? destination) =>
        Served.Record(_fastPath.AccessLog, new LoggedRequest(_request), status, started, graph, terminal, destination);

    /// <summary>An answer of the LB's own (404, 503, 502, 504, respond and redirect nodes).</summary>
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
        await SendAsync(_out.Written);
        _out.Clear();
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
        var allowed = _fastPath.MinSendGraceMs + length * 1000L / _fastPath.MinSendBytesPerSecond;
        Volatile.Write(ref _deadline, Environment.TickCount64 + allowed);
        try { await send; }
        finally { Volatile.Write(ref _deadline, 0); }
    }

    private static readonly byte[]?[] StatusLines = new byte[1000][];

    /// <summary>"HTTP/1.1 200 OK\r\n", made once per code.</summary>
    private static byte[] StatusLine(int status) =>
        StatusLines[status] ??= Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n");

    /// <summary>A fast-path request as its access-log line describes it.</summary>
    private readonly struct LoggedRequest(FastPathRequest r) : ILoggedRequest
    {
        public string Client => r.PeerText;
        public string Method => r.Method;
        public string Host => Encoding.ASCII.GetString(r.Bytes(r.HostRange));
        public string Target => r.Target;
        public string Protocol => "HTTP/1.1";
        public string? UserAgent => r.Header("User-Agent");
    }
}
