using System.Net.Security;
using EdgeEru.Registry.Tls;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;

namespace EdgeEru.Registry.Etcd;

/// <summary>
/// gRPC channels to the etcd members (dotnet-etcd's generated clients). One endpoint is current;
/// <see cref="Failover"/> moves to the next after a transport failure.
/// </summary>
public sealed class EtcdConnection : IDisposable
{
    private readonly GrpcChannel[] _channels;
    private int _current;

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
            ServiceConfig = RetryUnreached,
        })).ToArray();
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
        if (options.TlsCa.Length > 0) ssl.RemoteCertificateValidationCallback = PemTls.TrustOnly(PemTls.LoadRoots(options.TlsCa, "Registry:TlsCa"));
        return ssl;
    }

    /// <summary>
    /// Calls that fail with Unavailable before etcd saw them (connection refused, subchannel in backoff)
    /// are retried by gRPC itself; a call etcd answered is never retried here.
    /// </summary>
    private static readonly ServiceConfig RetryUnreached = new()
    {
        MethodConfigs =
        {
            new MethodConfig
            {
                Names = { MethodName.Default },
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = 5,
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

    public Etcdserverpb.KV.KVClient KV => new(_channels[Volatile.Read(ref _current)]);
    public Etcdserverpb.Watch.WatchClient Watch => new(_channels[Volatile.Read(ref _current)]);
    public Etcdserverpb.Lease.LeaseClient Lease => new(_channels[Volatile.Read(ref _current)]);

    public DateTime Deadline => DateTime.UtcNow + Options.RequestTimeout;

    /// <summary>Moves to the next endpoint (no-op with one).</summary>
    public void Failover()
    {
        if (_channels.Length > 1) Interlocked.Exchange(ref _current, (_current + 1) % _channels.Length);
    }

    public static bool IsTransient(RpcException ex) =>
        ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal
            or StatusCode.Unknown or StatusCode.Aborted or StatusCode.ResourceExhausted;

    public void Dispose()
    {
        foreach (var c in _channels) c.Dispose();
    }
}
