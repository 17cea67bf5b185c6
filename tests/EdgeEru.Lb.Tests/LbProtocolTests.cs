using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EdgeEru.Dev;
using EdgeEru.Lb.Tests.Grpc;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// Protocols through the balancer, with real clients: TLS termination with certificates picked by SNI and
/// reloaded from disk, HTTP/2 over TLS, h2c to backends, gRPC (unary, streaming, status in trailers), WebSockets.
/// </summary>
public sealed class LbProtocolTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private readonly int _backendPort = Ports.FreeTcp();
    private readonly int _tlsPort = Ports.FreeTcp();
    private readonly int _h2cPort = Ports.FreeTcp();
    private readonly string _certs = Directory.CreateTempSubdirectory("eru-lb-certs-").FullName;
    private readonly List<WebApplication> _backends = [];
    private readonly HashSet<string> _issued = [];
    private TestLb? _lb;
    private EtcdConnection? _conn;
    private RegistryLease? _lease;

    public async Task InitializeAsync()
    {
        // web: HTTP/1.1 with a WebSocket echo on 127.0.0.5; grpc: HTTP/2 only (h2c) on 127.0.0.6.
        var web = WebApplication.CreateSlimBuilder(Backend.Args);
        web.WebHost.UseUrls($"http://127.0.0.5:{_backendPort}");
        web.Logging.ClearProviders();
        var webApp = web.Build();
        webApp.UseWebSockets();
        webApp.Run(async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest)
            {
                await ctx.Response.WriteAsync(
                    $"web {ctx.Request.Protocol} {ctx.Request.Path} proto={ctx.Request.Headers["X-Forwarded-Proto"]}");
                return;
            }
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[4096];
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer, ctx.RequestAborted);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", ctx.RequestAborted);
                    return;
                }
                var reply = Encoding.UTF8.GetBytes("echo " + Encoding.UTF8.GetString(buffer, 0, r.Count));
                await ws.SendAsync(reply, WebSocketMessageType.Text, true, ctx.RequestAborted);
            }
        });
        await webApp.StartAsync();
        _backends.Add(webApp);

        var grpc = WebApplication.CreateSlimBuilder(Backend.Args);
        grpc.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Parse("127.0.0.6"), _backendPort, l => l.Protocols = HttpProtocols.Http2));
        grpc.Logging.ClearProviders();
        grpc.Services.AddGrpc();
        var grpcApp = grpc.Build();
        grpcApp.MapGrpcService<EchoService>();
        await grpcApp.StartAsync();
        _backends.Add(grpcApp);

        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        var store = new RegistryStore(_conn);
        _lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), _lease.Id);
        foreach (var (id, app, ip) in new[] { ("web00001", "web", "127.0.0.5"), ("grpc0001", "grpc", "127.0.0.6") })
        {
            await store.PutAsync(Kinds.Workloads, Samples.Workload(id, app: app, ip: ip, httpPort: _backendPort));
            await store.PutAsync(Kinds.WorkloadStatus, Samples.Status(id, ip: ip), _lease.Id);
        }
        await store.PutAsync(Kinds.LbDomains, Domain("shop.test", "web", null));
        await store.PutAsync(Kinds.LbDomains, Domain("*.apps.test", "web", null));
        await store.PutAsync(Kinds.LbDomains, Domain("grpc.test", "grpc", new LbBackendOptions { Protocol = "h2c" }));

        WriteCertificate("shop", ["shop.test"], TimeSpan.FromDays(30));
        WriteCertificate("apps", ["*.apps.test", "grpc.test"], TimeSpan.FromDays(60));

        _lb = await TestLb.StartAsync(etcd.Url, prefix, output, extra:
            [
                "--Lb:Tls:Urls", $"https://127.0.0.1:{_tlsPort}", "--Lb:H2cUrls", $"http://127.0.0.1:{_h2cPort}",
                "--Lb:Tls:Certificates", _certs, "--Lb:Tls:ReloadSeconds", "0.2",
            ]);
        using var http = Client(out _);
        await Until(async () => (await Get(http, "https://shop.test/")).StartsWith("web", StringComparison.Ordinal),
            "lb routes shop.test over TLS");
    }

    private static LbDomain Domain(string name, string app, LbBackendOptions? options) => new()
    {
        Name = name,
        Init = "b",
        Nodes = new()
        {
            ["b"] = new LbNode
            {
                Type = "backend", Select = new LbSelector { App = app, Entrypoint = "web", Port = "http" }, Options = options,
            },
        },
    };

    /// <summary>A self-signed certificate for <paramref name="names"/>, trusted by this test's clients.</summary>
    private (X509Certificate2 Cert, string CertPem, string KeyPem) NewCertificate(string[] names, TimeSpan life)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in names) san.AddDnsName(n);
        req.CertificateExtensions.Add(san.Build());
        var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow + life);
        lock (_issued) _issued.Add(cert.Thumbprint);
        return (cert, cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>A self-signed PEM pair in the certificate directory, serving <paramref name="names"/>.</summary>
    private X509Certificate2 WriteCertificate(string file, string[] names, TimeSpan life)
    {
        var (cert, certPem, keyPem) = NewCertificate(names, life);
        // Key first, then the certificate: the directory is watched and a pair is read when the .crt changes.
        File.WriteAllText(Path.Combine(_certs, file + ".key"), keyPem);
        File.WriteAllText(Path.Combine(_certs, file + ".crt.tmp"), certPem);
        File.Move(Path.Combine(_certs, file + ".crt.tmp"), Path.Combine(_certs, file + ".crt"), overwrite: true);
        return cert;
    }

    /// <summary>
    /// An HTTPS client whose URLs carry the host name (so SNI and Host are the domain's) while every
    /// connection goes to the LB on 127.0.0.1; <paramref name="seen"/> receives the certificate each handshake shows.
    /// </summary>
    private HttpClient Client(out List<X509Certificate2> seen, Version? version = null)
    {
        var certs = new List<X509Certificate2>();
        seen = certs;
        var handler = Handler(certs);
        return new HttpClient(handler)
        {
            DefaultRequestVersion = version ?? HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    private SocketsHttpHandler Handler(List<X509Certificate2> seen) => new()
    {
        PooledConnectionLifetime = TimeSpan.Zero, // a new connection (and handshake) per request
        ConnectCallback = async (ctx, ct) =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            // https:// → the TLS port, ws:// and http:// → the HTTP/1.1 port, http://…:81 → the h2c port.
            var port = ctx.DnsEndPoint.Port switch { 443 => _tlsPort, 80 => _lb!.Port, 81 => _h2cPort, var p => p };
            await s.ConnectAsync(IPAddress.Loopback, port, ct);
            return new NetworkStream(s, ownsSocket: true);
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            // Self-signed test certificates: trusted when they are ones this test wrote (pinned by thumbprint).
            RemoteCertificateValidationCallback = (_, cert, _, _) =>
            {
                if (cert is null) return false;
                lock (seen) seen.Add(new X509Certificate2(cert));
                lock (_issued) return _issued.Contains(cert.GetCertHashString());
            },
        },
    };

    private static async Task<string> Get(HttpClient http, string url)
    {
        try
        {
            using var resp = await http.GetAsync(url);
            var body = await resp.Content.ReadAsStringAsync();
            return resp.IsSuccessStatusCode ? body : $"{(int)resp.StatusCode} {body}";
        }
        catch (HttpRequestException ex)
        {
            return "failed: " + ex.Message;
        }
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for: " + what);
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task TLS_is_terminated_with_the_certificate_SNI_names_and_HTTP2_is_offered()
    {
        using var http = Client(out var seen);
        Assert.Equal("web HTTP/1.1 / proto=https", await Get(http, "https://shop.test/"));
        Assert.Equal("CN=shop.test", seen[^1].Subject);
        Assert.StartsWith("web", await Get(http, "https://x.apps.test/"), StringComparison.Ordinal);
        Assert.Equal("CN=*.apps.test", seen[^1].Subject); // wildcard certificate for a wildcard domain

        // HTTP/2 from the client (ALPN h2); the web backend still gets HTTP/1.1.
        using var h2 = Client(out _, HttpVersion.Version20);
        using var resp = await h2.GetAsync("https://shop.test/two");
        Assert.Equal(HttpVersion.Version20, resp.Version);
        Assert.Equal("web HTTP/1.1 /two proto=https", await resp.Content.ReadAsStringAsync());

        // A name no certificate has and no default: the handshake is refused.
        Assert.StartsWith("failed", await Get(http, "https://nobody.test/"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replaced_certificate_file_is_served_to_new_connections_without_a_restart()
    {
        using var http = Client(out var seen);
        Assert.StartsWith("web", await Get(http, "https://shop.test/"), StringComparison.Ordinal);
        var before = seen[^1].Thumbprint;
        var renewed = WriteCertificate("shop", ["shop.test", "www.shop.test"], TimeSpan.FromDays(90));
        await Until(async () =>
        {
            await Get(http, "https://shop.test/");
            return seen[^1].Thumbprint == renewed.Thumbprint;
        }, "the renewed certificate is served");
        Assert.NotEqual(before, renewed.Thumbprint);

        // A broken file does not take the name away: the last good certificate keeps serving.
        File.WriteAllText(Path.Combine(_certs, "shop.crt"), "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
        await Task.Delay(600);
        Assert.StartsWith("web", await Get(http, "https://shop.test/"), StringComparison.Ordinal);
        Assert.Equal(renewed.Thumbprint, seen[^1].Thumbprint);
    }

    [Fact]
    public async Task A_certificate_stored_in_the_registry_is_served_by_SNI_and_removed_without_a_restart()
    {
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_lb!.AdminPort}") };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "t");
        async Task<(int Status, string Body)> Put(string name, object body)
        {
            using var resp = await admin.PutAsync($"/api/certificates/{name}", System.Net.Http.Json.JsonContent.Create(body));
            return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
        }

        // Refused before storing: not PEM, and a key that does not belong to the certificate.
        var (cert, certPem, keyPem) = NewCertificate(["reg.apps.test"], TimeSpan.FromDays(10));
        var bad = await Put("reg", new { certificate = "hello", key = keyPem });
        Assert.Equal(400, bad.Status);
        Assert.Contains("certificate is not PEM", bad.Body, StringComparison.Ordinal);
        var (_, _, otherKey) = NewCertificate(["other.test"], TimeSpan.FromDays(10));
        var mismatch = await Put("reg", new { certificate = certPem, key = otherKey });
        Assert.Equal(400, mismatch.Status);
        Assert.Contains("does not load", mismatch.Body, StringComparison.Ordinal);

        using var http = Client(out var seen);
        Assert.StartsWith("web", await Get(http, "https://reg.apps.test/"), StringComparison.Ordinal);
        Assert.Equal("CN=*.apps.test", seen[^1].Subject); // the directory's wildcard until the registry has one

        var good = await Put("reg", new { certificate = certPem, key = keyPem });
        Assert.True(good.Status == 200, good.Body);
        await Until(async () =>
        {
            await Get(http, "https://reg.apps.test/");
            return seen[^1].Thumbprint == cert.Thumbprint;
        }, "the registry's certificate is served for its exact name");
        Assert.Contains("registry:reg", await admin.GetStringAsync("/api/certificates"), StringComparison.Ordinal);

        using (var del = await admin.DeleteAsync("/api/certificates/reg")) Assert.Equal(HttpStatusCode.OK, del.StatusCode);
        await Until(async () =>
        {
            await Get(http, "https://reg.apps.test/");
            return seen[^1].Subject == "CN=*.apps.test";
        }, "back to the wildcard once the registry's certificate is deleted");
    }

    [Fact]
    public async Task gRPC_goes_through_over_TLS_and_h2c_with_streams_and_status_trailers()
    {
        using var channel = GrpcChannel.ForAddress("https://grpc.test", new GrpcChannelOptions { HttpHandler = Handler([]) });
        var client = new Echo.EchoClient(channel);

        var reply = await client.SayAsync(new EchoRequest { Text = "hi" });
        Assert.Equal("hi", reply.Text);
        Assert.Equal("HTTP/2", reply.Protocol); // the backend was reached over h2c

        using var stream = client.Count(new EchoRequest { Text = "n", Times = 5 });
        var got = new List<string>();
        await foreach (var r in stream.ResponseStream.ReadAllAsync()) got.Add(r.Text);
        Assert.Equal(["n0", "n1", "n2", "n3", "n4"], got);

        // The status travels in HTTP/2 trailers: the proxy must carry them.
        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.SayAsync(new EchoRequest { Text = "missing" }));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("no such thing: missing", error.Status.Detail);
    }

    [Fact]
    public async Task gRPC_goes_through_cleartext_HTTP2_with_prior_knowledge()
    {
        using var channel = GrpcChannel.ForAddress("http://grpc.test:81", new GrpcChannelOptions { HttpHandler = Handler([]) });
        var reply = await new Echo.EchoClient(channel).SayAsync(new EchoRequest { Text = "plain" });
        Assert.Equal("plain", reply.Text);
        Assert.Equal("HTTP/2", reply.Protocol);
    }

    [Fact]
    public async Task WebSockets_are_proxied()
    {
        using var invoker = new HttpMessageInvoker(Handler([]));
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(new Uri("ws://shop.test/ws"), invoker, CancellationToken.None);
        var buffer = new byte[1024];
        foreach (var text in new[] { "one", "two" })
        {
            await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);
            var r = await ws.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Equal("echo " + text, Encoding.UTF8.GetString(buffer, 0, r.Count));
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
    }

    public async Task DisposeAsync()
    {
        if (_lb is not null) await _lb.DisposeAsync();
        foreach (var b in _backends) await b.DisposeAsync();
        if (_lease is not null) await _lease.DisposeAsync();
        Dispose();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        if (Directory.Exists(_certs)) Directory.Delete(_certs, recursive: true);
    }
}

/// <summary>The gRPC backend: says what it got and over which protocol; "missing" is NotFound.</summary>
internal sealed class EchoService : Echo.EchoBase
{
    public override Task<EchoReply> Say(EchoRequest request, ServerCallContext context)
    {
        if (request.Text == "missing") throw new RpcException(new Status(StatusCode.NotFound, "no such thing: missing"));
        return Task.FromResult(new EchoReply { Text = request.Text, Protocol = context.GetHttpContext().Request.Protocol });
    }

    public override async Task Count(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (var i = 0; i < request.Times; i++) await responseStream.WriteAsync(new EchoReply { Text = request.Text + i });
    }
}
