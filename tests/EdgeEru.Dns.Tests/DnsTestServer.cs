using System.Net;
using DnsClient;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EdgeEru.Dns.Tests;

/// <summary>A real eru-dns host on loopback ports of its own, following a registry prefix of its own.</summary>
internal sealed class DnsTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private DnsTestServer(WebApplication app, int port, int httpPort, EtcdConnection conn)
    {
        _app = app;
        Port = port;
        HttpPort = httpPort;
        Conn = conn;
        Store = new RegistryStore(conn);
    }

    public int Port { get; }
    public int HttpPort { get; }
    public EtcdConnection Conn { get; }
    public RegistryStore Store { get; }

    public static async Task<DnsTestServer> StartAsync(
        EtcdFixture etcd, ITestOutputHelper output, string? etcdUrl = null, params string[] extra)
    {
        var prefix = EtcdFixture.NewPrefix();
        int port, httpPort;
        WebApplication app;
        for (var attempt = 1; ; attempt++)
        {
            port = Ports.FreeTcp();
            httpPort = Ports.FreeTcp();
            app = DnsHost.Create(
            [
                "--Registry:Endpoints", etcdUrl ?? etcd.Url, "--Registry:Prefix", prefix,
                "--Dns:Listen", "127.0.0.1", "--Dns:Port", port.ToString(), "--Http:Urls", $"http://127.0.0.1:{httpPort}",
                .. extra,
            ], logging => logging.AddProvider(new XunitLoggerProvider(output)));
            try
            {
                await app.StartAsync();
                break;
            }
            catch (Exception ex) when (attempt < 5
                && (ex is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse }
                    || ex.InnerException is System.Net.Sockets.SocketException
                        { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse }))
            {
                // A port that was free a moment ago was taken by a test running in parallel: pick others.
                await app.DisposeAsync();
            }
        }
        // Ready when it serves its first table (before that every query gets SERVFAIL).
        using var http = new HttpClient();
        await Eventually.True(async () => (await http.GetAsync(new Uri($"http://127.0.0.1:{httpPort}/healthz"))).IsSuccessStatusCode,
            TimeSpan.FromSeconds(15), "eru-dns healthy");
        return new DnsTestServer(app, port, httpPort, new EtcdConnection(etcd.Options(prefix, etcdUrl)));
    }

    public LookupClient Client(bool tcpOnly = false, bool fallbackToTcp = true) =>
        new(new LookupClientOptions(new NameServer(IPAddress.Loopback, Port))
        {
            UseCache = false,
            Retries = 0,
            Timeout = TimeSpan.FromSeconds(3),
            UseTcpOnly = tcpOnly,
            UseTcpFallback = fallbackToTcp,
            ThrowDnsErrors = false,
        });

    /// <summary>Makes workloads live: node heartbeat, records, statuses under one lease (returned).</summary>
    public async Task<RegistryLease> LiveAsync(string app, params (string Id, string Ip)[] workloads)
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await Store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        foreach (var chunk in workloads.Chunk(50))
        {
            var tx = Store.Begin();
            foreach (var (id, ip) in chunk)
            {
                tx.Put(Kinds.Workloads, Samples.Workload(id, app: app, ip: ip));
                tx.Put(Kinds.WorkloadStatus, Samples.Status(id, ip: ip), lease.Id);
            }
            await tx.CommitAsync();
        }
        return lease;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Conn.Dispose();
    }
}
