using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Core.Secrets;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EdgeEru.Core.Server;

/// <summary>Core's own token, <c>Core:Token</c> (what <c>./eru dev</c> writes to .dev/core.token): admin, never stored.</summary>
public sealed class BearerToken(string token)
{
    private readonly byte[] _token = Encoding.UTF8.GetBytes(token);

    /// <summary>Constant-time check of a presented token.</summary>
    public bool Matches(string presented) => CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _token);
}

/// <summary>
/// The one place every call is let in or refused, before any handler runs: the bearer token names the caller
/// (UNAUTHENTICATED without a valid one), <see cref="ScopeTable"/> says what the method needs and the request which
/// apps it touches (PERMISSION_DENIED naming the scope that is missing). Audited methods are written to the audit
/// log with their outcome, refusals for a scope included.
/// </summary>
public sealed class AuthInterceptor(
    BearerToken bootstrap, TokenStore tokens, RegistryStore store, RegistryWatcher watcher, AuditLog audit, ILogger<AuthInterceptor> log)
    : Interceptor
{
    private const string CallerKey = "eru.caller";

    /// <summary>The caller the interceptor let in (for handlers that record who did something).</summary>
    public static Caller CallerOf(ServerCallContext context) =>
        context.UserState.TryGetValue(CallerKey, out var c) && c is Caller caller ? caller
            : throw new RpcException(new Status(StatusCode.Internal, "the call has no authenticated caller"));

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var call = await AdmitAsync(context, () => Task.FromResult(request as IMessage));
        return await AuditedAsync(call, context, () => continuation(request, context));
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var call = await AdmitAsync(context, () => Task.FromResult(request as IMessage));
        await AuditedAsync(call, context, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context,
        ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        // The first message names what the stream acts on (a workload, a build's tags); the handler still reads it.
        var reader = new ReplayingReader<TRequest>(requestStream);
        var call = await AdmitAsync(context, async () => await reader.PeekAsync(context.CancellationToken) as IMessage);
        return await AuditedAsync(call, context, () => continuation(reader, context));
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var reader = new ReplayingReader<TRequest>(requestStream);
        var call = await AdmitAsync(context, async () => await reader.PeekAsync(context.CancellationToken) as IMessage);
        await AuditedAsync(call, context, async () =>
        {
            await continuation(reader, responseStream, context);
            return true;
        });
    }

    /// <summary>An admitted call, as the audit log records it.</summary>
    private sealed record Admitted(Caller Caller, string Method, MethodRule Rule, IReadOnlyList<string> Apps, string Target);

    /// <summary>Authenticates, then reads the request (a stream's first message only from a known caller) and checks it.</summary>
    private async Task<Admitted> AdmitAsync(ServerCallContext context, Func<Task<IMessage?>> read)
    {
        var caller = await AuthenticateAsync(context);
        var request = await read();
        var method = ScopeTable.MethodName(context.Method);
        var rule = ScopeTable.For(context.Method);
        var apps = RequestApps.Named(request);
        var call = new Admitted(caller, method, rule, apps, RequestApps.Target(request));
        string? missing;
        if (rule.Need == Need.Deploy && !caller.Scopes.Contains(TokenScopes.Admin))
        {
            // Workloads are looked up only for a caller that may deploy something; the others learn the app when the
            // request names it (deploy:hello), else only that a deploy scope is needed.
            missing = ScopeTable.DeploysAny(caller.Scopes) ? null
                : apps.Count > 0 ? ScopeTable.Missing(caller.Scopes, rule.Need, apps) : TokenScopes.DeployPrefix + "APP";
            if (ScopeTable.DeploysAny(caller.Scopes))
            {
                (apps, var refusal) = await AppsAsync(request, context.CancellationToken);
                if (refusal is not null) throw Refused(call, context, refusal.Code, refusal.Message);
                call = call with { Apps = apps };
                missing = ScopeTable.Missing(caller.Scopes, rule.Need, apps);
            }
        }
        else missing = ScopeTable.Missing(caller.Scopes, rule.Need, apps);
        if (missing is not null)
            throw Refused(call, context, StatusCode.PermissionDenied,
                $"{method} needs scope {missing}; token {caller.Name} has {string.Join(", ", caller.Scopes)}");
        context.UserState[CallerKey] = caller;
        return call;
    }

    private async Task<Caller> AuthenticateAsync(ServerCallContext context)
    {
        var header = context.RequestHeaders.GetValue("authorization");
        var presented = header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        if (presented.Length > 0 && bootstrap.Matches(presented)) return Caller.Bootstrap;
        string refusal;
        if (presented.Length == 0) refusal = "a valid bearer token is required (authorization: Bearer <token>)";
        else
        {
            (Caller? Caller, string? Refusal) checkedToken;
            try
            {
                checkedToken = await tokens.AuthenticateAsync(presented, context.CancellationToken);
            }
            catch (RpcException ex) when (ex.StatusCode is not StatusCode.Cancelled)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"cannot check the token: the registry: {ex.Status.Detail}"));
            }
            if (checkedToken.Caller is { } caller) return caller;
            refusal = checkedToken.Refusal!;
        }
        log.LogWarning("refused {Method} from {Peer}: {Refusal}", context.Method, context.Peer, refusal);
        throw new RpcException(new Status(StatusCode.Unauthenticated, refusal));
    }

    /// <summary>
    /// The apps a deploy-kind request touches, its workloads looked up in the watcher's snapshot; when one is not
    /// there, again once the snapshot has caught up with etcd (a workload made a moment ago).
    /// </summary>
    private async Task<(IReadOnlyList<string>, WorkloadRefs.Refusal?)> AppsAsync(IMessage? request, CancellationToken ct)
    {
        var result = RequestApps.Of(request, Workloads(watcher.Current));
        if (result.Refusal is null) return result;
        var (_, revision) = await store.ListAsync(Kinds.Pods, ct: ct);
        try
        {
            var snapshot = await watcher.WaitForRevisionAsync(revision, ct).WaitAsync(TimeSpan.FromSeconds(5), ct);
            return RequestApps.Of(request, Workloads(snapshot));
        }
        catch (TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"the registry watcher is behind revision {revision}"));
        }
    }

    private static List<Workload> Workloads(Registry.Snapshot.RegistrySnapshot snapshot) =>
        [.. snapshot.Workloads.Select(w => w.Record).OfType<Workload>()];

    private RpcException Refused(Admitted call, ServerCallContext context, StatusCode code, string message)
    {
        if (call.Rule.Audited) Write(call, context, code.ToString(), message, 0);
        log.LogWarning("refused {Method} for token {Token}: {Refusal}", call.Method, call.Caller.Name, message);
        return new RpcException(new Status(code, message));
    }

    private async Task<T> AuditedAsync<T>(Admitted call, ServerCallContext context, Func<Task<T>> handler)
    {
        if (!call.Rule.Audited) return await handler();
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await handler();
            Write(call, context, StatusCode.OK.ToString(), null, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return result;
        }
        catch (Exception ex)
        {
            var (code, detail) = ex switch
            {
                RpcException r => (r.StatusCode, r.Status.Detail),
                OperationCanceledException => (StatusCode.Cancelled, "cancelled"),
                _ => (StatusCode.Unknown, ex.Message),
            };
            Write(call, context, code.ToString(), detail, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            throw;
        }
    }

    private void Write(Admitted call, ServerCallContext context, string outcome, string? error, double ms) =>
        audit.Write(new AuditEntry(DateTimeOffset.UtcNow, call.Caller.Name, call.Method, call.Apps, call.Target, outcome, error,
            context.Peer, ms));

    /// <summary>A request stream whose first message is read ahead (to authorize the call) and handed on again.</summary>
    private sealed class ReplayingReader<T>(IAsyncStreamReader<T> inner) : IAsyncStreamReader<T> where T : class
    {
        private bool _peeked, _hasFirst, _replayed;

        public T Current { get; private set; } = null!;

        public async Task<T?> PeekAsync(CancellationToken ct)
        {
            _peeked = true;
            _hasFirst = await inner.MoveNext(ct);
            return _hasFirst ? inner.Current : null;
        }

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_peeked && !_replayed)
            {
                _replayed = true;
                if (!_hasFirst) return false;
                Current = inner.Current;
                return true;
            }
            if (!await inner.MoveNext(cancellationToken)) return false;
            Current = inner.Current;
            return true;
        }
    }
}
