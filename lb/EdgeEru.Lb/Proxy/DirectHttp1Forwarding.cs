using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Http1;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// Direct HTTP/1.1 forwarding of Kestrel's requests (on the epoll transport) for the commonest request: a GET or
/// HEAD without a body from an HTTP/1.x client to an HTTP/1.1 workload. The request head is written straight from
/// Kestrel's headers and the answer read into Kestrel's output buffer, through the same
/// <see cref="Http1Exchange"/> as the fast path, without HttpClient's request and response objects. Everything
/// else (bodies, upgrades, HTTP/2 either side) goes through YARP. The workload sees the same headers either way.
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

    public static ValueTask<ForwardOutcome> SendAsync(HttpContext context, Destination destination, BackendSettings backend) =>
        Http1Exchange.RunAsync(destination, HttpMethods.IsHead(context.Request.Method), backend.TimeoutMs,
            new KestrelResponse(context, backend.Edits));

    /// <summary>Kestrel's side of an exchange: the request from its headers, the answer into its response.</summary>
    private struct KestrelResponse(HttpContext context, HeaderEdits edits) : IExchangeClient
    {
        private readonly IHeaderDictionary _headers = context.Response.Headers;
        private readonly PipeWriter _body = context.Response.BodyWriter;
        private CancellationTokenRegistration _watch;

        public readonly void WriteRequestHead(HeadWriter writer, Destination destination)
        {
            var r = context.Request;
            var head = new UpstreamHead(writer, edits);
            head.Method(r.Method);
            head.Target(r.PathBase.ToUriComponent());
            head.Target(r.Path.ToUriComponent());
            head.Target(r.QueryString.Value);
            head.Host(destination.Authority);
            foreach (var (name, values) in r.Headers) head.Header(name, values);
            head.End(context.Connection.RemoteIpAddress?.ToString(), r.Scheme, r.Host.Value);
        }

        public void Watch(UpstreamConnection connection) =>
            _watch = context.RequestAborted.UnsafeRegister(static s => ((UpstreamConnection)s!).Abort(), connection);

        // Disposing the registration waits for a callback under way: no abort can come after it.
        public bool Unwatch(UpstreamConnection connection)
        {
            _watch.Dispose();
            return true;
        }

        public readonly void Status(int status) => context.Response.StatusCode = status;

        public readonly void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
            new DictionaryHeaders(_headers).Header(name, value);

        // Kestrel's response has no way to send a 1xx before the final answer (dotnet/aspnetcore#27851): they are dropped.
        public readonly bool TakesInterim => false;

        public readonly void EndInterim() { }

        // Kestrel frames the body itself: a length the workload declared is passed on, chunks are decoded and re-framed by Kestrel.
        public readonly void EndHead(in ResponseHead head)
        {
            var reply = context.Response;
            if (head.ContentLength >= 0 && head.Status is not (204 or 304)
                && (head.Framing == BodyFraming.ContentLength || HttpMethods.IsHead(context.Request.Method)))
                reply.ContentLength = head.ContentLength;
            foreach (var (name, value) in edits.SetResponse) _headers[name] = value;
        }

        public readonly void Write(ReadOnlySpan<byte> data) => _body.Write(data);

        public readonly ValueTask<bool> FlushAsync() => Flushed(_body);

        // Straight into Kestrel's output buffer: no copy of ours.
        public readonly Memory<byte> ReadBuffer(Memory<byte> own) => _body.GetMemory(4096);

        public readonly ValueTask<bool> RelayAsync(Memory<byte> piece)
        {
            _body.Advance(piece.Length);
            return Flushed(_body);
        }

        // A bodyless answer is left for Kestrel to write when the request ends (a flush now would start a response
        // Kestrel might frame as chunked).
        public readonly ValueTask<bool> EndBodyAsync(in ResponseHead head) =>
            head.Framing == BodyFraming.None ? new(true) : Flushed(_body);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> Flushed(PipeWriter writer)
    {
        var r = await writer.FlushAsync();
        return !r.IsCompleted && !r.IsCanceled;
    }
}
