using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>eru-core with API tokens on a real etcd: what each scope may call, revocation, expiry, the audit log, eru token.</summary>
public sealed class CoreTokensTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Bootstrap = "bootstrap-token";
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-tokens-").FullName;
    private WebApplication _core = null!;
    private string _url = "";
    private string _prefix = "";
    private GrpcChannel _channel = null!;
    private EtcdConnection _conn = null!;

    private string AuditFile => Path.Combine(_dir, "audit", "core.jsonl");

    public async Task InitializeAsync()
    {
        _prefix = EtcdFixture.NewPrefix();
        _url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", _url,
            "--Core:Token", Bootstrap, "--Core:AuditLog", AuditFile, "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(_url);
        _conn = new EtcdConnection(etcd.Options(_prefix));
    }

    private V1.Core.CoreClient Client(string? token) => CoreTokens.Client(_channel, token);

    [Fact]
    public async Task Each_scope_allows_only_its_calls_and_tokens_are_revoked_and_expire()
    {
        var admin = Client(Bootstrap);
        var reader = await CoreTokens.CreateAsync(admin, "reader", ["read"]);
        var ci = await CoreTokens.CreateAsync(admin, "ci", ["deploy:hello"]);
        var brief = await CoreTokens.CreateAsync(admin, "brief", ["read"], ttlSeconds: 2);

        // Without a token, with garbage, with a tampered one: UNAUTHENTICATED.
        await CoreTokens.Refused(StatusCode.Unauthenticated, "bearer token", Client(null).ListPodsAsync(new V1.ListPodsRequest()));
        await CoreTokens.Refused(StatusCode.Unauthenticated, "not valid", Client("nope").ListPodsAsync(new V1.ListPodsRequest()));
        var tampered = reader[..^2] + (reader[^2] == 'A' ? "B" : "A") + reader[^1];
        await CoreTokens.Refused(StatusCode.Unauthenticated, "token reader is not valid",
            Client(tampered).ListPodsAsync(new V1.ListPodsRequest()));

        // read: reads, and nothing else.
        await admin.AddPodAsync(new V1.AddPodRequest { Name = "dev" });
        Assert.Equal("dev", (await Client(reader).ListPodsAsync(new V1.ListPodsRequest())).Pods.Single().Name);
        await Client(reader).ListWorkloadsAsync(new V1.ListWorkloadsRequest());
        await CoreTokens.Refused(StatusCode.PermissionDenied, "AddPod needs scope admin; token reader has read",
            Client(reader).AddPodAsync(new V1.AddPodRequest { Name = "mine" }));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Deploy needs scope deploy:hello; token reader has read",
            CoreTokens.Drain(Client(reader).Deploy(new V1.DeployRequest { App = "hello" })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Remove needs scope deploy:APP; token reader has read",
            CoreTokens.Drain(Client(reader).Remove(new V1.RemoveRequest { Workloads = { "hello_web_0a1b2c" } })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "needs scope admin",
            Client(reader).ListSecretsAsync(new V1.ListSecretsRequest()));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "CreateToken needs scope admin",
            Client(reader).CreateTokenAsync(new V1.CreateTokenRequest { Name = "escalate", Scopes = { "admin" } }));

        // deploy:hello: its app's calls get past the check (to the handler's own refusal here: no such pod, no such workload).
        await CoreTokens.Refused(StatusCode.PermissionDenied, "ListPods needs scope read; token ci has deploy:hello",
            Client(ci).ListPodsAsync(new V1.ListPodsRequest()));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Deploy needs scope deploy:shop",
            CoreTokens.Drain(Client(ci).Deploy(CoreTokens.Sleeper("shop", "nowhere"))));
        await CoreTokens.Refused(StatusCode.NotFound, "pod nowhere",
            CoreTokens.Drain(Client(ci).Deploy(CoreTokens.Sleeper("hello", "nowhere"))));
        await CoreTokens.Refused(StatusCode.NotFound, "no workload shop_web_0a1b2c",
            CoreTokens.Drain(Client(ci).Remove(new V1.RemoveRequest { Workloads = { "shop_web_0a1b2c" } })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Build needs scope deploy:shop", BuildAsync(Client(ci), "r.local/shop:1"));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "AddNode needs scope admin",
            Client(ci).AddNodeAsync(new V1.AddNodeRequest { Node = new V1.Node { Name = "h1", Pod = "dev" } }));

        // Made by an admin token: created_by names it. Names are checked; the bootstrap's name is not for taking.
        var ops = await CoreTokens.CreateAsync(admin, "ops", ["admin"]);
        var opsMade = await Client(ops).CreateTokenAsync(new V1.CreateTokenRequest { Name = "ops-made", Scopes = { "read" } });
        Assert.Equal("ops", opsMade.Info.CreatedBy);
        await CoreTokens.Refused(StatusCode.AlreadyExists, "exists already",
            admin.CreateTokenAsync(new V1.CreateTokenRequest { Name = "ci", Scopes = { "read" } }));
        await CoreTokens.Refused(StatusCode.InvalidArgument, "scope \"write\"",
            admin.CreateTokenAsync(new V1.CreateTokenRequest { Name = "w", Scopes = { "write" } }));
        await CoreTokens.Refused(StatusCode.InvalidArgument, "Core:Token's",
            admin.CreateTokenAsync(new V1.CreateTokenRequest { Name = "bootstrap", Scopes = { "read" } }));

        // Listed without a secret; stored as the SHA-256 of the secret, which appears nowhere in the registry.
        var listed = await admin.ListTokensAsync(new V1.ListTokensRequest());
        Assert.Equal(["brief", "ci", "ops", "ops-made", "reader"], listed.Tokens.Select(t => t.Name));
        Assert.Equal(["deploy:hello"], listed.Tokens.Single(t => t.Name == "ci").Scopes);
        Assert.All(listed.Tokens.Where(t => t.Name != "ops-made"), t => Assert.Equal("bootstrap", t.CreatedBy));
        Assert.NotEqual("", listed.Tokens.Single(t => t.Name == "brief").ExpiresAt);
        var stored = (await new RegistryStore(_conn).GetAsync(Kinds.Tokens, "reader"))!.Value;
        Assert.Equal(SHA256.HashData(Secret(reader)), stored.SecretSha256);
        var everything = Encoding.UTF8.GetString(Kinds.Tokens.Encode(stored)) + JsonFormatter.Default.Format(listed);
        foreach (var t in new[] { reader, ci, brief, ops }) Assert.DoesNotContain(t[(t.LastIndexOf('.') + 1)..], everything);
        Assert.StartsWith(_prefix + "-private/tokens/", new RegistryKeys(_prefix).Key(Kinds.Tokens, "reader"), StringComparison.Ordinal);

        // Revoked: refused from the next call on.
        await admin.RevokeTokenAsync(new V1.RevokeTokenRequest { Name = "reader" });
        await CoreTokens.Refused(StatusCode.Unauthenticated, "token reader is not valid (revoked or unknown)",
            Client(reader).ListPodsAsync(new V1.ListPodsRequest()));
        await CoreTokens.Refused(StatusCode.NotFound, "token reader does not exist",
            admin.RevokeTokenAsync(new V1.RevokeTokenRequest { Name = "reader" }));

        // Expired: refused, and listed as such.
        await Eventually.True(async () =>
        {
            try
            {
                await Client(brief).ListPodsAsync(new V1.ListPodsRequest());
                return false;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unauthenticated)
            {
                Assert.Contains("token brief expired at", ex.Status.Detail, StringComparison.Ordinal);
                return true;
            }
        }, TimeSpan.FromSeconds(10), "the 2-second token refused as expired");
        Assert.True((await admin.ListTokensAsync(new V1.ListTokensRequest())).Tokens.Single(t => t.Name == "brief").Expired);

        // The audit log: changes and refusals of changes, who and what; reads are not in it, secrets never.
        var lines = AuditLines();
        Assert.Contains(lines, l => l.Who == "bootstrap" && l.Method == "CreateToken" && l.Target == "ci deploy:hello"
            && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Who == "reader" && l.Method == "AddPod" && l.Target == "mine" && l.Outcome == "PermissionDenied");
        Assert.Contains(lines, l => l.Who == "ci" && l.Method == "Deploy" && l.Apps.SequenceEqual(["hello"]) && l.Outcome == "NotFound");
        Assert.Contains(lines, l => l.Who == "bootstrap" && l.Method == "RevokeToken" && l.Target == "reader" && l.Outcome == "OK");
        Assert.DoesNotContain(lines, l => l.Method is "ListPods" or "ListTokens");
        var text = File.ReadAllText(AuditFile);
        foreach (var t in new[] { reader, ci, brief, ops }) Assert.DoesNotContain(t[(t.LastIndexOf('.') + 1)..], text);
    }

    [Fact]
    public async Task Eru_token_prints_the_token_once_lists_without_it_and_revokes()
    {
        string[] core = ["--core", _url, "--token", Bootstrap];
        var (code, stdout, stderr) =
            await EruCli.RunAsync(output, null, ["token", "create", "cli", "--scope", "read", "--ttl", "1h", .. core]);
        Assert.Equal(0, code);
        var token = stdout.Trim();
        Assert.StartsWith("eru.cli.", token, StringComparison.Ordinal);
        Assert.Contains("not shown again", stderr, StringComparison.Ordinal);

        Assert.Equal(0, (await EruCli.RunAsync(output, "pod", "ls", "--core", _url, "--token", token)).Code);
        var denied = await EruCli.RunAsync(output, "pod", "add", "p1", "--core", _url, "--token", token);
        Assert.Equal(1, denied.Code);
        Assert.Contains("PermissionDenied: AddPod needs scope admin", denied.Output, StringComparison.Ordinal);

        var ls = await EruCli.RunAsync(output, ["token", "ls", .. core]);
        Assert.Equal(0, ls.Code);
        Assert.Contains("cli", ls.Output, StringComparison.Ordinal);
        Assert.Contains("read", ls.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(token[(token.LastIndexOf('.') + 1)..], ls.Output, StringComparison.Ordinal);

        var badTtl = await EruCli.RunAsync(output, ["token", "create", "x", "--scope", "read", "--ttl", "soon", .. core]);
        Assert.Equal(2, badTtl.Code);
        Assert.Contains("--ttl \"soon\" is not a duration", badTtl.Output, StringComparison.Ordinal);

        Assert.Equal(0, (await EruCli.RunAsync(output, ["token", "rm", "cli", .. core])).Code);
        var revoked = await EruCli.RunAsync(output, "pod", "ls", "--core", _url, "--token", token);
        Assert.Equal(2, revoked.Code);
        Assert.Contains("revoked", revoked.Output, StringComparison.Ordinal);
    }

    private static async Task BuildAsync(V1.Core.CoreClient client, string tag)
    {
        using var call = client.Build();
        await call.RequestStream.WriteAsync(new V1.BuildRequest { Options = new V1.BuildOptions { Node = "h1", Tags = { tag } } });
        await call.RequestStream.CompleteAsync();
        await foreach (var _ in call.ResponseStream.ReadAllAsync())
        {
        }
    }

    private static byte[] Secret(string token) =>
        Convert.FromBase64String(token[(token.LastIndexOf('.') + 1)..].Replace('-', '+').Replace('_', '/') + "=");

    private List<CoreTokens.AuditLine> AuditLines() => CoreTokens.AuditLines(AuditFile);

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_core is not null) await _core.DisposeAsync();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>A deploy:hello token against real dockerd: deploys and removes hello, touches no other app's workloads.</summary>
[Collection(DockerRigCollection.Name)]
public sealed class CoreDeployScopeTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Bootstrap = "bootstrap-token";
    private const long MiB = 1L << 20;
    private readonly string _audit = Path.Combine(Directory.CreateTempSubdirectory("eru-core-audit-").FullName, "core.jsonl");
    private DockerRig _rig = null!;
    private WebApplication _core = null!;
    private GrpcChannel _channel = null!;
    private EtcdConnection _conn = null!;

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 1);
        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        var store = new RegistryStore(_conn);
        await store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        await store.PutAsync(Kinds.Nodes, _rig.Hosts[0].AsNode("dev", cpuCores: 2, memoryBytes: 256 * MiB));
        await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow },
            (await store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
        var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix, "--Core:Urls", url,
            "--Core:Token", Bootstrap, "--Core:AuditLog", _audit, "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(url);
    }

    [Fact]
    public async Task A_deploy_token_deploys_and_removes_its_app_only_and_the_deploy_is_audited()
    {
        var admin = CoreTokens.Client(_channel, Bootstrap);
        var ci = CoreTokens.Client(_channel, await CoreTokens.CreateAsync(admin, "ci-hello", ["deploy:hello", "read"]));

        var hello = (await CoreTokens.Drain(ci.Deploy(CoreTokens.Sleeper("hello", "dev")))).Single(e => e.Instance is not null).Instance;
        Assert.Equal("", hello.Error);
        var shop = (await CoreTokens.Drain(admin.Deploy(CoreTokens.Sleeper("shop", "dev")))).Single(e => e.Instance is not null).Instance;
        Assert.Equal("", shop.Error);
        Assert.Equal(2, (await RigDocker.ContainersAsync(_rig)).Count);

        // Another app's workloads, by name or by id prefix, alone or beside its own: refused, nothing touched.
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Deploy needs scope deploy:shop; token ci-hello has deploy:hello, read",
            CoreTokens.Drain(ci.Deploy(CoreTokens.Sleeper("shop", "dev"))));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Remove needs scope deploy:shop",
            CoreTokens.Drain(ci.Remove(new V1.RemoveRequest { Workloads = { hello.Name, shop.Name } })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Control needs scope deploy:shop",
            CoreTokens.Drain(ci.Control(new V1.ControlRequest { Workloads = { shop.WorkloadId[..8] }, Action = V1.ControlAction.Stop })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "Realloc needs scope deploy:shop",
            CoreTokens.Drain(ci.Realloc(new V1.ReallocRequest { Workloads = { "shop" }, MemoryRequestBytes = 16 * MiB })));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "CopyFrom needs scope deploy:shop",
            CoreTokens.Drain(ci.CopyFrom(new V1.CopyFromRequest { Workload = shop.Name, Path = "/etc/hostname" })));
        // A stream is checked on its first message (then handed on to the call).
        await CoreTokens.Refused(StatusCode.PermissionDenied, "CopyTo needs scope deploy:shop", CopyToAsync(ci, shop.Name));
        Assert.Equal(2, (await RigDocker.ContainersAsync(_rig)).Count(c => c.Running));

        // Its own: copied into and out of, removed.
        await CopyToAsync(ci, hello.Name);
        var copied = await CoreTokens.Drain(ci.CopyFrom(new V1.CopyFromRequest { Workload = hello.Name, Path = "/tmp/scoped.txt" }));
        Assert.Contains("in by ci-hello", Encoding.UTF8.GetString([.. copied.SelectMany(c => c.Data)]), StringComparison.Ordinal);
        var removed = await CoreTokens.Drain(ci.Remove(new V1.RemoveRequest { Workloads = { hello.Name }, StopTimeoutS = 0 }));
        Assert.Equal("", removed.Single().Error);
        Assert.Equal([shop.WorkloadId], (await RigDocker.ContainersAsync(_rig)).Select(c => c.Id));
        await CoreTokens.Drain(admin.Remove(new V1.RemoveRequest { Workloads = { shop.Name }, StopTimeoutS = 0 }));

        var lines = CoreTokens.AuditLines(_audit);
        Assert.Contains(lines, l => l.Who == "ci-hello" && l.Method == "Deploy" && l.Apps.SequenceEqual(["hello"])
            && l.Target == "hello.web" && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Who == "ci-hello" && l.Method == "Remove" && l.Apps.SequenceEqual(["hello", "shop"])
            && l.Outcome == "PermissionDenied");
        Assert.Contains(lines, l => l.Who == "ci-hello" && l.Method == "CopyTo" && l.Target == shop.Name + ":/tmp"
            && l.Outcome == "PermissionDenied");
        Assert.Contains(lines, l => l.Who == "ci-hello" && l.Method == "Remove" && l.Target == hello.Name && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Who == "bootstrap" && l.Method == "Deploy" && l.Apps.SequenceEqual(["shop"]) && l.Outcome == "OK");
    }

    /// <summary>A file into the workload's /tmp through CopyTo (a client stream: the workload and path first, then a tar).</summary>
    private static async Task CopyToAsync(V1.Core.CoreClient client, string workload)
    {
        using var tar = new MemoryStream();
        using (var writer = new System.Formats.Tar.TarWriter(tar, leaveOpen: true))
        {
            var entry = new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "scoped.txt")
            {
                DataStream = new MemoryStream("in by ci-hello\n"u8.ToArray()),
            };
            writer.WriteEntry(entry);
        }
        using var call = client.CopyTo();
        try
        {
            await call.RequestStream.WriteAsync(new V1.CopyToRequest { Workload = workload, Path = "/tmp" });
            await call.RequestStream.WriteAsync(new V1.CopyToRequest { Data = ByteString.CopyFrom(tar.ToArray()) });
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException)
        {
            // Refused before the whole stream was sent: the status comes with the response.
        }
        await call.ResponseAsync;
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_core is not null) await _core.DisposeAsync();
        if (_rig is not null) await _rig.DisposeAsync();
    }

    public void Dispose()
    {
        _conn?.Dispose();
        Directory.Delete(Path.GetDirectoryName(_audit)!, recursive: true);
    }
}

/// <summary>What the token tests share: clients with a token, refusals, the audit file.</summary>
internal static class CoreTokens
{
    public sealed record AuditLine(string Who, string Method, string[] Apps, string Target, string Outcome);

    public static V1.Core.CoreClient Client(GrpcChannel channel, string? token) => new(channel.Intercept(m =>
    {
        if (token is not null) m.Add("authorization", "Bearer " + token);
        return m;
    }));

    public static async Task<string> CreateAsync(V1.Core.CoreClient admin, string name, string[] scopes, long ttlSeconds = 0)
    {
        var made = await admin.CreateTokenAsync(new V1.CreateTokenRequest { Name = name, Scopes = { scopes }, TtlSeconds = ttlSeconds });
        Assert.Equal(scopes, made.Info.Scopes);
        return made.Token;
    }

    public static V1.DeployRequest Sleeper(string app, string pod) => new()
    {
        App = app, Entrypoint = "web", Image = DockerRig.Image, Pod = pod, Count = 1, Command = { "sleep", "600" },
        Networks = { [DockerRig.Network] = "" },
        Resources = new V1.Resources { MemoryRequestBytes = 16L << 20, MemoryLimitBytes = 16L << 20 },
    };

    public static async Task<List<T>> Drain<T>(AsyncServerStreamingCall<T> call)
    {
        using (call)
        {
            var list = new List<T>();
            await foreach (var e in call.ResponseStream.ReadAllAsync()) list.Add(e);
            return list;
        }
    }

    public static async Task Refused<T>(StatusCode code, string message, AsyncUnaryCall<T> call)
    {
        using (call) await Refused(code, message, call.ResponseAsync);
    }

    public static async Task Refused(StatusCode code, string message, Task call)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal(code, ex.StatusCode);
        Assert.Contains(message, ex.Status.Detail, StringComparison.Ordinal);
    }

    public static List<AuditLine> AuditLines(string path) =>
    [
        .. File.ReadAllLines(path).Select(l =>
        {
            var e = JsonDocument.Parse(l).RootElement;
            Assert.True(DateTimeOffset.TryParse(e.GetProperty("time").GetString(), out _), l);
            return new AuditLine(e.GetProperty("who").GetString()!, e.GetProperty("method").GetString()!,
                e.TryGetProperty("apps", out var apps) ? [.. apps.EnumerateArray().Select(a => a.GetString()!)] : [],
                e.TryGetProperty("target", out var t) ? t.GetString()! : "", e.GetProperty("outcome").GetString()!);
        }),
    ];
}
