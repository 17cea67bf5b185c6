using System.Buffers;
using System.Net;
using System.Net.Sockets;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Http1;
using EdgeEru.Lb.Transport;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// Direct HTTP/1.1 forwarding for the commonest request: a GET or HEAD without a body from an HTTP/1.x client to an
/// HTTP/1.1 workload. It writes the request head straight from Kestrel's headers into a kept-alive
/// connection on the epoll loops and reads the response into Kestrel's output buffer, without the request
/// and response message objects of HttpClient. Everything else (bodies, upgrades, HTTP/2 either side)
/// goes through YARP's forwarder. The headers the workload sees are the same either way.
/// </summary>
internal static class DirectHttp1Forwarding
{
    /// <summary>Whether this request may be forwarded directly.</summary>
    public static bool CanForward(HttpContext context, BackendSettings backend)
    {
        var r = context.Request;
        return backend.Protocol == UpstreamProtocol.Http1
            && (HttpMethods.IsGet(r.Method) || HttpMethods.IsHead(r.Method))
            && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false
            && !r.Headers.ContainsKey("Upgrade") && !r.Headers.ContainsKey("Expect")
            && (r.Protocol == "HTTP/1.1" || r.Protocol == "HTTP/1.0");
    }

    /// <summary>
    /// Forwards to <paramref name="destination"/>; the error kinds are YARP's, so callers treat both ways alike.
    /// One async method from the request head to the last byte of the answer: a forwarded request keeps one
    /// state machine of this class on the heap while the workload answers, not one per step.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<ForwarderError> SendAsync(HttpContext context, Destination destination, BackendSettings backend)
    {
        var requestHead = BuildRequestHead(context, destination, backend.Edits, out var headLength);
        var head = requestHead.AsMemory(0, headLength);
        var isHead = HttpMethods.IsHead(context.Request.Method);
        var timeoutMs = backend.TimeoutMs;
        try
        {
            // A kept-alive connection may have been closed by the workload just now: then once more on a new one
            // (safe: GET and HEAD, and nothing of a response came).
            for (var attempt = 0; ; attempt++)
            {
                var c = attempt == 0 ? UpstreamPool.Of(destination).Rent() : null;
                var reused = c is not null;
                if (c is null)
                {
                    try
                    {
                        var ip = IPAddress.Parse(destination.Address);
                        using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                        c = new UpstreamConnection(await EpollSocket.ConnectAsync(new IPEndPoint(ip, destination.Port), connectTimeout.Token));
                    }
                    catch (Exception e) when (e is SocketException or OperationCanceledException or FormatException)
                    {
                        return Fail(context, ForwarderError.Request, StatusCodes.Status502BadGateway, e);
                    }
                }
                var outcome = Outcome.BodyBroken;
                var keep = false;
                c.Begin(timeoutMs);
                var aborted = context.RequestAborted.UnsafeRegister(static s => ((UpstreamConnection)s!).Abort(), c);
                try
                {
                    try
                    {
                        await c.Socket.SendAsync(head);
                    }
                    catch (SocketException)
                    {
                        outcome = c.TimedOut ? Outcome.TimedOut : Outcome.StaleConnection;
                        goto exchanged;
                    }

                    // The head: read until it is complete (1xx interim responses are skipped).
                    var buffer = c.Buffer;
                    int start = 0, end = 0;
                    ResponseHead response;
                    var reply = context.Response;
                    while (true)
                    {
                        if (end > start)
                        {
                            // Headers go straight to the response, except an interim (1xx) response's, which is skipped.
                            var span = buffer.AsSpan(start, end - start);
                            var interim = span.Length > 9 && span[9] == '1';
                            bool complete;
                            try
                            {
                                complete = ResponseParser.TryParse(span, isHead, interim ? null : reply.Headers, out response);
                            }
                            catch (InvalidDataException)
                            {
                                outcome = Outcome.BadResponse;
                                goto exchanged;
                            }
                            if (complete)
                            {
                                if (!interim) break;
                                if (response.Status == 101) { outcome = Outcome.BadResponse; goto exchanged; } // no upgrade was asked for
                                start += response.Length;
                                continue;
                            }
                        }
                        if (!ResponseParser.MakeRoom(buffer, ref start, ref end)) { outcome = Outcome.BadResponse; goto exchanged; } // a head larger than the buffer
                        int n;
                        try
                        {
                            n = await c.Socket.ReceiveAsync(buffer.AsMemory(end));
                        }
                        catch (SocketException)
                        {
                            outcome = c.TimedOut ? Outcome.TimedOut : c.Aborted ? Outcome.ClientGone : end == 0 ? Outcome.StaleConnection : Outcome.BadResponse;
                            goto exchanged;
                        }
                        if (n == 0) { outcome = end == 0 && start == 0 ? Outcome.StaleConnection : Outcome.BadResponse; goto exchanged; }
                        end += n;
                        c.Touch();
                    }
                    reply.StatusCode = response.Status;
                    start += response.Length;
                    if (response.ContentLength >= 0 && response.Status is not (204 or 304)
                        && (response.Framing == BodyFraming.ContentLength || isHead))
                        reply.ContentLength = response.ContentLength;
                    foreach (var (name, value) in backend.Edits.SetResponse) reply.Headers[name] = value;

                    outcome = await CopyBodyAsync(context, c, response, start, end);
                    keep = outcome == Outcome.Done && response.KeepAlive && !c.Aborted;
                }
                finally
                {
                    // No abort can reach the connection after this (it may serve another request next).
                    aborted.Dispose();
                    // Whatever went wrong, that connection is not used again; a good one goes back for the next request.
                    if (c.End() && keep && c.Socket.IsQuiet) UpstreamPool.Of(destination).Return(c);
                    else c.Dispose();
                }
            exchanged:
                if (outcome == Outcome.StaleConnection && reused && attempt == 0) continue;
                return outcome switch
                {
                    Outcome.Done => ForwarderError.None,
                    Outcome.StaleConnection => Fail(context, ForwarderError.Request, StatusCodes.Status502BadGateway, null),
                    Outcome.TimedOut => Fail(context, ForwarderError.RequestTimedOut, StatusCodes.Status504GatewayTimeout, null),
                    Outcome.BadResponse => Fail(context, ForwarderError.ResponseHeaders, StatusCodes.Status502BadGateway, null),
                    Outcome.ClientGone => ForwarderError.ResponseBodyClient,
                    _ => Fail(context, ForwarderError.ResponseBodyDestination, StatusCodes.Status502BadGateway, null),
                };
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(requestHead);
        }
    }

    private enum Outcome { Done, StaleConnection, TimedOut, BadResponse, ClientGone, BodyBroken }

    private static ForwarderError Fail(HttpContext context, ForwarderError error, int status, Exception? e)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.StatusCode = status;
        }
        else context.Abort();
        context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(error, e));
        return error;
    }

    private sealed class ErrorFeature(ForwarderError error, Exception? e) : IForwarderErrorFeature
    {
        public ForwarderError Error { get; } = error;
        public Exception? Exception { get; } = e;
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<Outcome> CopyBodyAsync(HttpContext context, UpstreamConnection c, ResponseHead response, int start, int end)
    {
        var writer = context.Response.BodyWriter;
        var buffer = c.Buffer;
        switch (response.Framing)
        {
            case BodyFraming.None:
                return end == start ? Outcome.Done : Outcome.BadResponse; // bytes beyond the response: not reusable
            case BodyFraming.ContentLength:
            {
                var remaining = response.ContentLength;
                var have = end - start;
                if (have > remaining) return Outcome.BadResponse;
                if (have > 0)
                {
                    writer.Write(buffer.AsSpan(start, have));
                    remaining -= have;
                }
                while (remaining > 0)
                {
                    // Straight into Kestrel's output buffer.
                    var memory = writer.GetMemory(4096);
                    if (memory.Length > remaining) memory = memory[..(int)remaining];
                    int n;
                    try { n = await c.Socket.ReceiveAsync(memory); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return Outcome.BodyBroken;
                    writer.Advance(n);
                    remaining -= n;
                    c.Touch();
                    if (remaining > 0 && !await Flushed(writer)) return Outcome.ClientGone;
                }
                return await Flushed(writer) ? Outcome.Done : Outcome.ClientGone;
            }
            case BodyFraming.Chunked:
            {
                var decoder = new ChunkedDecoder();
                while (true)
                {
                    while (start < end && !decoder.Done)
                    {
                        int used;
                        try { used = decoder.Step(buffer.AsSpan(start, end - start), out var dataStart, out var dataLength); if (dataLength > 0) writer.Write(buffer.AsSpan(start + dataStart, dataLength)); }
                        catch (InvalidDataException) { return Outcome.BodyBroken; }
                        if (used == 0) break;
                        start += used;
                    }
                    if (decoder.Done) return end == start && await Flushed(writer) ? Outcome.Done : Outcome.BodyBroken;
                    if (!await Flushed(writer)) return Outcome.ClientGone;
                    if (start == end) start = end = 0;
                    if (!ResponseParser.MakeRoom(buffer, ref start, ref end)) return Outcome.BodyBroken; // a framing line longer than the buffer
                    int n;
                    try { n = await c.Socket.ReceiveAsync(buffer.AsMemory(end)); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return Outcome.BodyBroken;
                    end += n;
                    c.Touch();
                }
            }
            default: // until the workload closes the connection
            {
                if (end > start) writer.Write(buffer.AsSpan(start, end - start));
                while (true)
                {
                    if (!await Flushed(writer)) return Outcome.ClientGone;
                    var memory = writer.GetMemory(4096);
                    int n;
                    try { n = await c.Socket.ReceiveAsync(memory); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return Outcome.Done;
                    writer.Advance(n);
                    c.Touch();
                }
            }
        }
    }

    /// <summary>A body read failed: the client left (its abort closed the socket), else the workload's side broke.</summary>
    private static Outcome BrokenRead(UpstreamConnection c) => c.Aborted && !c.TimedOut ? Outcome.ClientGone : Outcome.BodyBroken;

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> Flushed(System.IO.Pipelines.PipeWriter writer)
    {
        var r = await writer.FlushAsync();
        return !r.IsCompleted && !r.IsCanceled;
    }

    /// <summary>
    /// The request line and headers as the workload gets them (those YARP's forwarder would send: hop-by-hop
    /// headers dropped, X-Forwarded-*, the backend's header edits), in a pooled buffer.
    /// </summary>
    private static byte[] BuildRequestHead(HttpContext context, Destination destination, HeaderEdits edits, out int length)
    {
        var r = context.Request;
        var head = HeadWriter.ForThisThread(); // a head is written in one go, with no await inside
        head.Append(r.Method).Append(" ").Append(r.PathBase.ToUriComponent()).Append(r.Path.ToUriComponent()).Append(r.QueryString.Value).Append(" HTTP/1.1\r\nHost: ")
            .Append(destination.Authority).Append("\r\n");
        foreach (var (name, values) in r.Headers)
        {
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase) || FieldNames.IsHopByHop(name) || ForwardedHeaders.IsOurs(name)) continue;
            if (edits.RemovesRequest(name) || edits.SetsRequest(name)) continue;
            foreach (var v in values) head.Append(name).Append(": ").Append(v).Append("\r\n");
        }
        // The LB's own, unless the backend removes them (as the YARP way's transform does).
        if (!edits.RemovesRequest(ForwardedHeaders.For))
            head.Append(ForwardedHeaders.For).Append(": ").Append(ForwardedHeaders.ForValue(context)).Append("\r\n");
        if (!edits.RemovesRequest(ForwardedHeaders.Proto))
            head.Append(ForwardedHeaders.Proto).Append(": ").Append(r.Scheme).Append("\r\n");
        if (!edits.RemovesRequest(ForwardedHeaders.Host))
            head.Append(ForwardedHeaders.Host).Append(": ").Append(r.Host.Value).Append("\r\n");
        foreach (var (name, value) in edits.SetRequest) head.Append(name).Append(": ").Append(value).Append("\r\n");
        head.Append("\r\n");
        length = head.Length;
        return head.Buffer;
    }
}
