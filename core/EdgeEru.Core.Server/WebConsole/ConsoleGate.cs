using Google.Protobuf;
using Grpc.Core;

namespace EdgeEru.Core.Server.WebConsole;

/// <summary>
/// The way in for every console endpoint: the request goes through the <see cref="AuthInterceptor"/> (token, scope
/// table, audit log) as the RPC it stands for, then to <see cref="CoreService"/>'s own handler. A refusal becomes the
/// HTTP status that says the same (401, 403, 400, 404, 409, 503) with the message as JSON.
/// </summary>
internal sealed class ConsoleGate(IServiceProvider services)
{
    public const string ServicePath = "/edgeeru.core.v1.Core/";

    /// <summary>Proto3 JSON with every field, so that the page need not know the defaults.</summary>
    public static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private readonly AuthInterceptor _auth = ActivatorUtilities.CreateInstance<AuthInterceptor>(services);

    public CoreService Service { get; } = ActivatorUtilities.CreateInstance<CoreService>(services);

    public ConsoleSources Sources { get; } = services.GetRequiredService<ConsoleSources>();

    /// <summary>The console views' JSON (camelCase, as the page reads it).</summary>
    public static readonly System.Text.Json.JsonSerializerOptions Web = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // read as data, never as HTML
    };

    /// <summary>A unary RPC (or a console view, under <see cref="ScopeTable.ConsoleViewPath"/>): its reply as JSON.</summary>
    public async Task UnaryAsync<TRequest, TReply>(HttpContext http, string method, TRequest request,
        Func<TRequest, ServerCallContext, Task<TReply>> handler, Func<TReply, string> json)
        where TRequest : class where TReply : class
    {
        try
        {
            var reply = await _auth.UnaryServerHandler(request, Context(http, method), (r, c) => handler(r, c));
            await WriteJsonAsync(http, StatusCodes.Status200OK, json(reply));
        }
        catch (RpcException ex)
        {
            await RefusedAsync(http, ex, null);
        }
    }

    /// <summary>A streaming RPC whose messages are collected and answered as one JSON array (deploy, remove, stop).</summary>
    public async Task CollectedAsync<TRequest, TReply>(HttpContext http, string method, TRequest request,
        Func<TRequest, IServerStreamWriter<TReply>, ServerCallContext, Task> handler)
        where TRequest : class where TReply : class, IMessage
    {
        var writer = new CollectingWriter<TReply>();
        try
        {
            await _auth.ServerStreamingServerHandler(request, writer, Context(http, method), (r, w, c) => handler(r, w, c));
            await WriteJsonAsync(http, StatusCodes.Status200OK, "[" + string.Join(",", writer.Messages.Select(m => Json.Format(m))) + "]");
        }
        catch (RpcException ex)
        {
            await RefusedAsync(http, ex, writer.Messages.Select(m => Json.Format(m)).ToList());
        }
    }

    /// <summary>
    /// A streaming RPC as server-sent events: once the call is let in, the response starts (so a quiet follow still
    /// answers 200 at once), then each message is a <c>data:</c> line; a refusal after the start is an <c>error</c> event.
    /// <paramref name="admitted"/> may refuse (an RpcException) once the caller is let in, before the start.
    /// </summary>
    public async Task EventsAsync<TRequest, TReply>(HttpContext http, string method, TRequest request,
        Func<TRequest, IServerStreamWriter<TReply>, ServerCallContext, Task> handler, Func<Task>? admitted = null)
        where TRequest : class where TReply : class, IMessage
    {
        var writer = new EventWriter<TReply>(http);
        try
        {
            await _auth.ServerStreamingServerHandler(request, writer, Context(http, method), async (r, w, c) =>
            {
                if (admitted is not null) await admitted(); // checks that answer with a status, before the stream starts
                await writer.StartAsync();
                await handler(r, w, c);
            });
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled || http.RequestAborted.IsCancellationRequested)
        {
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
        }
        catch (RpcException ex)
        {
            if (writer.Started) await writer.ErrorAsync(ex);
            else await RefusedAsync(http, ex, null);
        }
    }

    public static ServerCallContext Context(HttpContext http, string method) => new ConsoleCallContext(http, method);

    public static Task WriteJsonAsync(HttpContext http, int status, string json)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        return http.Response.WriteAsync(json, http.RequestAborted);
    }

    /// <summary>A 4xx before anything reaches the service (400 unless said): the field or the thing that is wrong, in words.</summary>
    public static Task RefuseAsync(HttpContext http, string message, int status = StatusCodes.Status400BadRequest) =>
        WriteJsonAsync(http, status, System.Text.Json.JsonSerializer.Serialize(new { error = message, code = CodeOf(status) }, Web));

    /// <summary>The HTTP status that says what a gRPC status says.</summary>
    public static int HttpStatus(StatusCode code) => code switch
    {
        StatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        StatusCode.PermissionDenied => StatusCodes.Status403Forbidden,
        StatusCode.InvalidArgument or StatusCode.OutOfRange => StatusCodes.Status400BadRequest,
        StatusCode.NotFound => StatusCodes.Status404NotFound,
        StatusCode.AlreadyExists or StatusCode.FailedPrecondition or StatusCode.ResourceExhausted or StatusCode.Aborted =>
            StatusCodes.Status409Conflict,
        StatusCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        StatusCode.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        StatusCode.Unimplemented => StatusCodes.Status501NotImplemented,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static string CodeOf(int status) => status switch
    {
        StatusCodes.Status404NotFound => nameof(StatusCode.NotFound),
        StatusCodes.Status413PayloadTooLarge => "TooLarge",
        _ => nameof(StatusCode.InvalidArgument),
    };

    private static Task RefusedAsync(HttpContext http, RpcException ex, List<string>? events)
    {
        if (http.RequestAborted.IsCancellationRequested) return Task.CompletedTask;
        var body = $"{{\"error\":{System.Text.Json.JsonSerializer.Serialize(ex.Status.Detail, Web)},\"code\":\"{ex.StatusCode}\""
            + (events is { Count: > 0 } ? ",\"events\":[" + string.Join(",", events) + "]" : "") + "}";
        return WriteJsonAsync(http, HttpStatus(ex.StatusCode), body);
    }

    private sealed class CollectingWriter<T> : IServerStreamWriter<T>
    {
        public List<T> Messages { get; } = [];
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(T message)
        {
            lock (Messages) Messages.Add(message);
            return Task.CompletedTask;
        }

        public Task WriteAsync(T message, CancellationToken cancellationToken) => WriteAsync(message);
    }

    private sealed class EventWriter<T>(HttpContext http) : IServerStreamWriter<T> where T : IMessage
    {
        public bool Started { get; private set; }
        public WriteOptions? WriteOptions { get; set; }

        public async Task StartAsync()
        {
            Started = true;
            http.Response.ContentType = "text/event-stream; charset=utf-8";
            http.Response.Headers.CacheControl = "no-store";
            await http.Response.WriteAsync(": admitted\n\n", http.RequestAborted);
            await http.Response.Body.FlushAsync(http.RequestAborted);
        }

        public Task WriteAsync(T message) => WriteAsync(message, http.RequestAborted);

        public async Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            await http.Response.WriteAsync("data: " + Json.Format(message) + "\n\n", cancellationToken);
            await http.Response.Body.FlushAsync(cancellationToken);
        }

        public async Task ErrorAsync(RpcException ex)
        {
            var data = System.Text.Json.JsonSerializer.Serialize(new { error = ex.Status.Detail, code = ex.StatusCode.ToString() }, Web);
            await http.Response.WriteAsync("event: error\ndata: " + data + "\n\n", http.RequestAborted);
        }
    }
}
