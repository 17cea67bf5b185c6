using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EdgeEru.Docker;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>
/// A node whose Docker engine listens on tcp:// with --tlsverify (CA, server and client certificates made
/// here): node add reads its capacity over TLS, a deploy runs there, and a client certificate from
/// another CA is refused with an error that says TLS.
/// </summary>
[Collection(DockerRigCollection.Name)]
public sealed class TlsEngineTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const long MiB = 1L << 20;
    private const string Token = "tls-test-token";
    private const int TlsPort = 2376;
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-tls-").FullName;
    private DockerRig _rig = null!;
    private WebApplication _core = null!;
    private GrpcChannel _channel = null!;
    private V1.Core.CoreClient _api = null!;
    private EtcdConnection _conn = null!;
    private string _prefix = "";

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>Writes a certificate and its key as PEM files.</summary>
    private void Save(string name, X509Certificate2 cert, ECDsa key)
    {
        File.WriteAllText(PathOf(name + ".pem"), cert.ExportCertificatePem());
        File.WriteAllText(PathOf(name + "-key.pem"), key.ExportPkcs8PrivateKeyPem());
    }

    private static (X509Certificate2 Cert, ECDsa Key) Ca(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        return (req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-10), DateTimeOffset.UtcNow.AddDays(2)), key);
    }

    private static (X509Certificate2 Cert, ECDsa Key) Issue(
        (X509Certificate2 Cert, ECDsa Key) ca, string name, bool server, string? ip = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        req.CertificateExtensions.Add(
            new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (ip is not null)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(System.Net.IPAddress.Parse(ip));
            req.CertificateExtensions.Add(san.Build());
        }
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var signer = X509CertificateLoader.LoadCertificate(ca.Cert.RawData).CopyWithPrivateKey(ca.Key);
        return (req.Create(signer, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial), key);
    }

    public async Task InitializeAsync()
    {
        var ca = Ca("eru-test-ca");
        Save("ca", ca.Cert, ca.Key);
        var client = Issue(ca, "eru-core", server: false);
        Save("client", client.Cert, client.Key);
        var otherCa = Ca("another-ca");
        Save("other-ca", otherCa.Cert, otherCa.Key);
        var stranger = Issue(otherCa, "eru-core", server: false);
        Save("stranger", stranger.Cert, stranger.Key);
        // h1's dockerd also listens on its own address with --tlsverify; its certificate names that address.
        _rig = await DockerRig.StartAsync(hosts: 1, dockerdArgs: h =>
        {
            var server = Issue(ca, "docker-" + h.Name, server: true, ip: h.Address);
            Save("server", server.Cert, server.Key);
            return ["--tlsverify", "--tlscacert", PathOf("ca.pem"), "--tlscert", PathOf("server.pem"), "--tlskey", PathOf("server-key.pem"),
                "-H", $"tcp://{h.Address}:{TlsPort}"];
        });
        _prefix = EtcdFixture.NewPrefix();
        var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", url, "--Core:Token", Token,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"], l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(url);
        _api = new V1.Core.CoreClient(_channel.Intercept(m =>
        {
            m.Add("authorization", "Bearer " + Token);
            return m;
        }));
        _conn = new EtcdConnection(etcd.Options(_prefix));
    }

    private V1.Node TlsNode(string name, string cert, string ca = "ca") => new()
    {
        Name = name, Pod = "dev", Endpoint = $"tcp://{_rig.Hosts[0].Address}:{TlsPort}", Address = _rig.Hosts[0].Address,
        Networks = { DockerRig.Network },
        TlsCaPath = PathOf(ca + ".pem"), TlsCertPath = PathOf(cert + ".pem"), TlsKeyPath = PathOf(cert + "-key.pem"),
    };

    [Fact]
    public async Task Node_add_and_deploy_work_over_a_tls_endpoint_and_a_foreign_client_certificate_is_refused()
    {
        await _api.AddPodAsync(new V1.AddPodRequest { Name = "dev" });

        // A client certificate from another CA: the engine hangs up in the handshake; the refusal says TLS.
        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            _api.AddNodeAsync(new V1.AddNodeRequest { Node = TlsNode("h9", "stranger") }).ResponseAsync);
        output.WriteLine(refused.Status.Detail);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains($"node h9: the Docker engine at tcp://{_rig.Hosts[0].Address}:{TlsPort} did not answer", refused.Status.Detail,
            StringComparison.Ordinal);
        Assert.Contains("TLS", refused.Status.Detail, StringComparison.Ordinal);
        // The engine's certificate does not chain to the CA given for it: refused on our side.
        var untrusted = await Assert.ThrowsAsync<RpcException>(() =>
            _api.AddNodeAsync(new V1.AddNodeRequest { Node = TlsNode("h7", "client", ca: "other-ca") }).ResponseAsync);
        output.WriteLine(untrusted.Status.Detail);
        Assert.Equal(StatusCode.FailedPrecondition, untrusted.StatusCode);
        Assert.Contains("TLS handshake failed", untrusted.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("see inner exception", untrusted.Status.Detail, StringComparison.Ordinal);
        // Plain HTTP to the TLS port (no certificate given) is refused too, and says why.
        var plain = await Assert.ThrowsAsync<RpcException>(() => _api.AddNodeAsync(new V1.AddNodeRequest
        {
            Node = new V1.Node { Name = "h8", Pod = "dev", Endpoint = $"tcp://{_rig.Hosts[0].Address}:{TlsPort}" },
        }).ResponseAsync);
        output.WriteLine(plain.Status.Detail);
        Assert.Equal(StatusCode.FailedPrecondition, plain.StatusCode);
        Assert.Contains("HTTPS", plain.Status.Detail, StringComparison.OrdinalIgnoreCase);

        // The right certificate: capacity comes from the engine, over TLS.
        var node = await _api.AddNodeAsync(new V1.AddNodeRequest { Node = TlsNode("h1", "client") });
        Assert.Equal(Environment.ProcessorCount, node.Capacity.CpuCores);
        Assert.True(node.Capacity.MemoryBytes > 256 * MiB);
        Assert.Equal(["h1"], (await _api.ListNodesAsync(new V1.ListNodesRequest())).Nodes.Select(n => n.Name));

        // Alive (a heartbeat as the agent would write it), then a deploy through the TLS endpoint.
        var store = new RegistryStore(_conn);
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow }, lease.Id);
        var deploy = new V1.DeployRequest
        {
            App = "hello", Entrypoint = "web", Image = DockerRig.Image, Pod = "dev", Count = 1,
            Command = { "sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www" },
            Networks = { [DockerRig.Network] = "" },
            Resources = new V1.Resources { MemoryRequestBytes = 32 * MiB, MemoryLimitBytes = 32 * MiB },
        };
        using var call = _api.Deploy(deploy);
        var events = new List<V1.DeployEvent>();
        await foreach (var e in call.ResponseStream.ReadAllAsync()) events.Add(e);
        var instance = Assert.Single(events, e => e.EventCase == V1.DeployEvent.EventOneofCase.Instance).Instance;
        Assert.Equal("", instance.Error);
        // Docker itself (over the unix socket) has the container the TLS client created.
        using var local = new DockerEngine(new DockerEndpoint { Address = _rig.Hosts[0].Endpoint });
        var container = Assert.Single(await local.ListEdgeEruAsync());
        Assert.Equal(instance.WorkloadId, container.Id);
        Assert.True(container.Running);
    }

    public void Dispose()
    {
        _conn?.Dispose();
        _channel?.Dispose();
    }

    public async Task DisposeAsync()
    {
        if (_core is not null)
        {
            await _core.StopAsync();
            await _core.DisposeAsync();
        }
        if (_rig is not null) await _rig.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
