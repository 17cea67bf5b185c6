using System.Net.Sockets;
using System.Runtime.CompilerServices;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Transport;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// One request to a workload over HTTP/1.1 and its answer relayed to the client, in the steps both HTTP/1.1 ways
/// share (the fast path, and Kestrel's direct forwarding): a connection, the request head, the response head,
/// the body, the connection back. The ways differ only in their client side (<see cref="IExchangeClient"/>).
/// Only GET and HEAD without a body come here, so a request may be sent twice.
/// </summary>
internal static class Http1Exchange
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Sends the request to <paramref name="destination"/> and relays the answer. One async method from the request
    /// head to the answer's last byte (the steps that wait are written inline, the others are methods returning
    /// an outcome): a request keeps one state machine of it while the workload answers.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<ForwardOutcome> RunAsync<TClient>(Destination destination, bool isHead, int timeoutMs, TClient client)
        where TClient : struct, IExchangeClient
    {
        var pool = UpstreamPool.Of(destination);
        for (var attempt = 0; ; attempt++)
        {
            // 1. A connection: the newest kept-alive one of this loop, else a new one.
            var c = attempt == 0 ? pool.Rent() : null;
            var reused = c is not null;
            c ??= await ConnectAsync(destination, timeoutMs);
            if (c is null) return ForwardOutcome.Unreachable;

            // Each step below answers Done when it did its part; anything else ends the exchange with that outcome.
            c.Begin(timeoutMs);
            var outcome = ForwardOutcome.BodyBroken;
            ResponseHead head = default;
            try
            {
                client.Watch(c);

                // 2. The request head, written by the client side for this destination.
                client.WriteRequestHead(c.RequestHead, destination);
                outcome = await SendHeadAsync(c);

                // 3. The response head, read until it is complete; interim (1xx) ones go to the client as they come
                // when its side takes them, else they are skipped.
                while (outcome == ForwardOutcome.Done)
                {
                    var read = ReadHead(c, isHead, ref client, ref head, ref outcome);
                    if (read == HeadRead.Final) break;
                    if (read == HeadRead.Interim)
                    {
                        if (!await client.FlushAsync()) outcome = ForwardOutcome.ClientGone;
                        continue;
                    }
                    int n;
                    try { n = await c.Socket.ReceiveAsync(c.Response.Free); }
                    catch (SocketException) { n = -1; }
                    outcome = HeadReceived(c, n);
                }

                // 4. The body, from the workload's framing into the client's.
                if (outcome == ForwardOutcome.Done)
                {
                    client.EndHead(head);
                    outcome = await RelayBodyAsync(c, head, client);
                }
            }
            finally
            {
                // 5. The connection: back to its pool after a whole answer that leaves it open, else closed.
                Release(pool, c, outcome == ForwardOutcome.Done && head.KeepAlive, client.Unwatch(c));
            }

            // A kept-alive connection the workload closed just as it was taken (nothing of an answer came): once
            // more on a new one.
            if (outcome == ForwardOutcome.Unreachable && reused && attempt == 0) continue;
            return outcome;
        }
    }

    /// <summary>
    /// Step 1 without a kept-alive connection: a new one, on the caller's loop; null when it cannot be made in time (the
    /// backend's timeout when shorter: a workload that hangs with a full accept queue takes no SYN, and another is tried).
    /// </summary>
    private static async ValueTask<UpstreamConnection?> ConnectAsync(Destination destination, int timeoutMs)
    {
        try
        {
            using var timeout = new CancellationTokenSource(timeoutMs < ConnectTimeout.TotalMilliseconds
                ? TimeSpan.FromMilliseconds(timeoutMs) : ConnectTimeout);
            if (destination.EndPoint is not { } target) return null; // no IP address: unreachable, as a refused connect
            return new UpstreamConnection(await EpollSocket.ConnectAsync(target, timeout.Token));
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Step 2: the head leaves with the loop's other sends at the end of its turn (at once off the loops).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<ForwardOutcome> SendHeadAsync(UpstreamConnection c)
    {
        try
        {
            await c.Socket.SendSoonAsync(c.RequestHead.Written);
            return ForwardOutcome.Done;
        }
        catch (SocketException)
        {
            return BeforeAnswer(c);
        }
    }

    /// <summary>What step 3 made of the bytes read so far.</summary>
    private enum HeadRead
    {
        /// <summary>The final head is complete and went to the client side, or the answer is refused (the outcome says so).</summary>
        Final,

        /// <summary>An interim head went to the client side: it is flushed before looking further.</summary>
        Interim,

        /// <summary>More must be read.</summary>
        More,
    }

    /// <summary>Step 3 on what has been read: the heads in it, up to the final one or the first interim one the client takes.</summary>
    private static HeadRead ReadHead<TClient>(
        UpstreamConnection c, bool isHead, ref TClient client, ref ResponseHead head, ref ForwardOutcome outcome)
        where TClient : struct, IExchangeClient
    {
        var response = c.Response;
        while (response.UnreadLength > 0)
        {
            var unread = response.Unread;
            var interim = unread.Length > 9 && unread[9] == '1';
            bool complete;
            try
            {
                var none = default(NoHeaders);
                complete = interim && !client.TakesInterim
                    ? ResponseParser.TryParse(unread, isHead, ref none, out head)
                    : ResponseParser.TryParse(unread, isHead, ref client, out head);
            }
            catch (InvalidDataException)
            {
                outcome = ForwardOutcome.BadResponse;
                return HeadRead.Final;
            }
            if (!complete) break;
            response.Consume(head.Length);
            if (!interim)
            {
                // Bytes beyond what the head announced: the two sides would disagree on where the next response starts.
                if ((head.Framing == BodyFraming.None && response.UnreadLength > 0)
                    || (head.Framing == BodyFraming.ContentLength && response.UnreadLength > head.ContentLength))
                    outcome = ForwardOutcome.BadResponse;
                return HeadRead.Final;
            }
            if (head.Status == 101) // no upgrade was asked for (what went to the client side is replaced by the 502)
            {
                outcome = ForwardOutcome.BadResponse;
                return HeadRead.Final;
            }
            if (client.TakesInterim)
            {
                client.EndInterim();
                return HeadRead.Interim;
            }
        }
        if (response.MakeRoom()) return HeadRead.More;
        outcome = ForwardOutcome.BadResponse; // a head larger than the buffer
        return HeadRead.Final;
    }

    /// <summary>Step 3 after a read of <paramref name="n"/> bytes (0: the workload closed, -1: the read failed).</summary>
    private static ForwardOutcome HeadReceived(UpstreamConnection c, int n)
    {
        if (n > 0)
        {
            c.Received(n);
            return ForwardOutcome.Done;
        }
        if (n < 0 && (c.TimedOut || c.Aborted)) return BeforeAnswer(c);
        // Closed or broken with nothing of an answer: as good as unreachable (a kept-alive one is retried). A head cut short is a bad
        // answer.
        return c.HeardBack ? ForwardOutcome.BadResponse : ForwardOutcome.Unreachable;
    }

    /// <summary>Why a send or read before the answer failed: the timeout sweep, the client leaving, else the workload's side.</summary>
    private static ForwardOutcome BeforeAnswer(UpstreamConnection c) =>
        c.TimedOut ? ForwardOutcome.TimedOut : c.Aborted ? ForwardOutcome.ClientGone : ForwardOutcome.Unreachable;

    /// <summary>
    /// Step 4: the body as the workload frames it (a length, chunks, or until it closes), handed to the client
    /// side, which frames it its own way. Waits only when the body did not come with the head.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<ForwardOutcome> RelayBodyAsync<TClient>(UpstreamConnection c, ResponseHead head, TClient client)
        where TClient : struct, IExchangeClient
    {
        var response = c.Response;
        switch (head.Framing)
        {
            case BodyFraming.None:
                return await client.EndBodyAsync(head) ? ForwardOutcome.Done : ForwardOutcome.ClientGone;

            case BodyFraming.ContentLength:
            {
                // What came with the head first, then the rest straight from the socket into the client side's buffer.
                var remaining = head.ContentLength - response.UnreadLength;
                client.Write(response.Unread);
                response.ConsumeAll();
                if (remaining > 0 && !await client.FlushAsync()) return ForwardOutcome.ClientGone;
                while (remaining > 0)
                {
                    var into = client.ReadBuffer(response.Free);
                    if (into.Length > remaining) into = into[..(int)remaining];
                    int n;
                    try { n = await c.Socket.ReceiveAsync(into); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return ForwardOutcome.BodyBroken;
                    c.Touch();
                    remaining -= n;
                    if (!await client.RelayAsync(into[..n])) return ForwardOutcome.ClientGone;
                }
                return await client.EndBodyAsync(head) ? ForwardOutcome.Done : ForwardOutcome.ClientGone;
            }

            case BodyFraming.Chunked:
            {
                var decoder = new ChunkedDecoder();
                while (true)
                {
                    if (!Dechunk(response, ref decoder, ref client)) return ForwardOutcome.BodyBroken;
                    if (decoder.Done)
                        return response.UnreadLength == 0 && await client.EndBodyAsync(head)
                            ? ForwardOutcome.Done
                            : ForwardOutcome.BodyBroken;
                    if (!await client.FlushAsync()) return ForwardOutcome.ClientGone;
                    if (!response.MakeRoom()) return ForwardOutcome.BodyBroken; // a framing line longer than the buffer
                    int n;
                    try { n = await c.Socket.ReceiveAsync(response.Free); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return ForwardOutcome.BodyBroken;
                    c.Received(n);
                }
            }

            default: // until the workload closes the connection
            {
                client.Write(response.Unread);
                response.ConsumeAll();
                if (!await client.FlushAsync()) return ForwardOutcome.ClientGone;
                while (true)
                {
                    var into = client.ReadBuffer(response.Free);
                    int n;
                    try { n = await c.Socket.ReceiveAsync(into); }
                    catch (SocketException) { return BrokenRead(c); }
                    if (n == 0) return await client.EndBodyAsync(head) ? ForwardOutcome.Done : ForwardOutcome.ClientGone;
                    c.Touch();
                    if (!await client.RelayAsync(into[..n])) return ForwardOutcome.ClientGone;
                }
            }
        }
    }

    /// <summary>The data of the chunks that have come, to the client side (framing dropped); false when the framing is broken.</summary>
    private static bool Dechunk<TClient>(ReadBuffer response, ref ChunkedDecoder decoder, ref TClient client)
        where TClient : struct, IExchangeClient
    {
        while (response.UnreadLength > 0 && !decoder.Done)
        {
            var unread = response.Unread;
            int used, start, length;
            try { used = decoder.Step(unread, out start, out length); }
            catch (InvalidDataException) { return false; }
            if (used == 0) break;
            if (length > 0) client.Write(unread.Slice(start, length));
            response.Consume(used);
        }
        return true;
    }

    /// <summary>A body read failed: the client left (its leaving closed the socket), else the workload's side broke.</summary>
    private static ForwardOutcome BrokenRead(UpstreamConnection c) =>
        c.Aborted && !c.TimedOut ? ForwardOutcome.ClientGone : ForwardOutcome.BodyBroken;

    /// <summary>Step 5: pooled when the answer was whole, the connection may carry another, and nothing can abort it late.</summary>
    private static void Release(UpstreamPool pool, UpstreamConnection c, bool reusable, bool unwatched)
    {
        if (c.End() && unwatched && reusable && c.Socket.IsQuiet) pool.Return(c);
        else c.Dispose();
    }
}
