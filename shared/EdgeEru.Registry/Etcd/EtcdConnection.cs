using System.Net.Security;
using EdgeEru.Registry.Tls;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;

namespace EdgeEru.Registry.Etcd;

/// <summary>
/// gRPC channels to the etcd members (dotnet-etcd's generated clients). One endpoint is current; a call
/// that fails as unavailable or past its deadline moves every later call to the next member (a dead, frozen
/// or leaderless member is left at once), and the streams (watch, lease keep-alive) call <see cref="Failover"/>.
/// </summary>
public sealed class EtcdConnection : IDisposable
{
    private readonly GrpcChannel[] _channels;
    private readonly CallInvoker[] _invokers;
    private int _current;
    private long _failovers;

    public EtcdConnection(RegistryOptions options)
    {
        Options = options;
        Endpoints = options.ParseEndpoints();
        _channels = Endpoints.Select(e => GrpcChannel.ForAddress(e, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                KeepAlivePingDelay = options.KeepAlive,
                KeepAlivePingTimeout = options.KeepAlive,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                ConnectTimeout = options.RequestTimeout,
                EnableMultipleHttp2Connections = true,
                SslOptions = ClientTls(options),
            },
            // A watch batch or a page of a large registry can exceed gRPC's 4 MiB default.
            MaxReceiveMessageSize = 256 * 1024 * 1024,
            Credentials = e.Scheme == "https" ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure,
            // etcd restarts are routine: reconnect quickly, and retry calls that never reached it.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(100),
            MaxReconnectBackoff = TimeSpan.FromSeconds(2),
            ServiceConfig = RetryUnreached(Endpoints.Count),
        })).ToArray();
        _invokers = [.. _channels.Select((c, i) => c.Intercept(new FailoverOnError(this, i)))];
    }

    /// <summary>
    /// TLS towards https:// members: the client certificate (whose CN etcd auth takes as the user) and, with
    /// Registry:TlsCa, a chain that must end at one of those CAs instead of the system's.
    /// </summary>
    private static SslClientAuthenticationOptions ClientTls(RegistryOptions options)
    {
        var ssl = new SslClientAuthenticationOptions();
        if (options.TlsCert.Length > 0) ssl.ClientCertificates = [PemTls.LoadCertificate(options.TlsCert, options.TlsKey)];
        // The name must still match the endpoint; only the chain is judged against our CAs.
        if (options.TlsCa.Length > 0)
            ssl.RemoteCertificateValidationCallback = PemTls.TrustOnly(PemTls.LoadRoots(options.TlsCa, "Registry:TlsCa"));
        return ssl;
    }

    /// <summary>
    /// Calls that fail with Unavailable before etcd saw them (connection refused, subchannel in backoff)
    /// are retried by gRPC itself, on the same member (once when there are others to fail over to); a call
    /// etcd answered is never retried here.
    /// </summary>
    private static ServiceConfig RetryUnreached(int endpoints) => new()
    {
        MethodConfigs =
        {
            new MethodConfig
            {
                Names = { MethodName.Default },
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = endpoints > 1 ? 2 : 5,
                    InitialBackoff = TimeSpan.FromMilliseconds(200),
                    MaxBackoff = TimeSpan.FromSeconds(2),
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { StatusCode.Unavailable },
                },
            },
        },
    };

    public RegistryOptions Options { get; }
    public IReadOnlyList<Uri> Endpoints { get; }
    public Uri CurrentEndpoint => Endpoints[Volatile.Read(ref _current)];

    public Etcdserverpb.KV.KVClient KV => new(_invokers[Volatile.Read(ref _current)]);
    public Etcdserverpb.Watch.WatchClient Watch => new(_invokers[Volatile.Read(ref _current)]);
    public Etcdserverpb.Lease.LeaseClient Lease => new(_invokers[Volatile.Read(ref _current)]);

    /// <summary>Moves from one member to the next so far.</summary>
    public long Failovers => Interlocked.Read(ref _failovers);

    public DateTime Deadline => DateTime.UtcNow + Options.RequestTimeout;

    /// <summary>Moves to the next endpoint (no-op with one).</summary>
    public void Failover() => FailoverFrom(Volatile.Read(ref _current));

    /// <summary>
    /// Moves to the member after <paramref name="failed"/> if that is still the current one: calls failing
    /// together on one member move on once, not once each (which could skip the good member).
    /// </summary>
    private void FailoverFrom(int failed)
    {
        if (_channels.Length > 1 && Interlocked.CompareExchange(ref _current, (failed + 1) % _channels.Length, failed) == failed)
            Interlocked.Increment(ref _failovers);
    }

    /// <summary>
    /// Unary calls (reads, writes, transactions, lease grants) that find their member away fail over. One whose
    /// connection was refused never reached etcd, so it is made again on the next members in turn; any other
    /// failure is the caller's to judge (a write may have been applied before its member died).
    /// </summary>
    private sealed class FailoverOnError(EtcdConnection etcd, int member) : Interceptor
    {
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
            ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            var call = continuation(request, context);
            return new AsyncUnaryCall<TResponse>(ObserveAsync(call.ResponseAsync, request, context), call.ResponseHeadersAsync,
                call.GetStatus, call.GetTrailers, call.Dispose);
        }

        private async Task<TResponse> ObserveAsync<TRequest, TResponse>(Task<TResponse> response, TRequest request,
            ClientInterceptorContext<TRequest, TResponse> context)
            where TRequest : class
            where TResponse : class
        {
            try
            {
                return await response;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                etcd.FailoverFrom(member);
                if (!NeverSent(ex) || etcd._channels.Length == 1) throw;
                for (var hop = 1; hop < etcd._channels.Length; hop++)
                {
                    var next = (member + hop) % etcd._channels.Length;
                    try
                    {
                        using var again = etcd._channels[next].CreateCallInvoker()
                            .AsyncUnaryCall(context.Method, context.Host, context.Options, request);
                        return await again.ResponseAsync;
                    }
                    catch (RpcException ex2) when (ex2.StatusCode == StatusCode.Unavailable && NeverSent(ex2))
                    {
                        etcd.FailoverFrom(next);
                    }
                }
                throw;
            }
        }

        private static bool NeverSent(RpcException ex) =>
            ex.StatusCode == StatusCode.Unavailable && ex.Status.DebugException is HttpRequestException
            {
                HttpRequestError: HttpRequestError.ConnectionError,
            };
    }

    public void Dispose()
    {
        foreach (var c in _channels) c.Dispose();
    }
}
