using EdgeEru.Core.Secrets;
using EdgeEru.Core.Server;
using EdgeEru.Registry.Model;
using Google.Protobuf;
using Grpc.Core;
using Xunit;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>The scope table and the checks around it (pure): every method has an entry, each scope allows what it says.</summary>
public sealed class ScopeTableTests
{
    private static readonly Workload[] Records =
    [
        Record("3f2a9c0d5e7b41a8", "hello_web_3f2a9c", "hello", "web"),
        Record("3f2a9c77aa00bb11", "hello_worker_3f2a9c", "hello", "worker"),
        Record("9b8c7d6e5f4a3b2c", "shop_web_9b8c7d", "shop", "web"),
    ];

    /// <summary>For each method that needs deploy: a request that touches app hello (by its spec, image or workloads).</summary>
    private static readonly Dictionary<string, IMessage> HelloRequests = new(StringComparer.Ordinal)
    {
        ["Deploy"] = new V1.DeployRequest { App = "hello", Entrypoint = "web" },
        ["Replace"] = new V1.ReplaceRequest { Request = new V1.DeployRequest { App = "hello" } },
        ["Run"] = new V1.RunRequest { Request = new V1.DeployRequest { App = "hello" } },
        ["Realloc"] = new V1.ReallocRequest { Workloads = { "hello.web" } },
        ["Remove"] = new V1.RemoveRequest { Workloads = { "hello_web_3f2a9c" } },
        ["Control"] = new V1.ControlRequest { Workloads = { "3f2a9c0d5e7b41a8" } },
        ["CopyFrom"] = new V1.CopyFromRequest { Workload = "hello_worker_3f2a9c", Path = "/etc" },
        ["CopyTo"] = new V1.CopyToRequest { Workload = "3f2a9c0d5e7b", Path = "/tmp" },
        ["Build"] = new V1.BuildRequest { Options = new V1.BuildOptions { Tags = { "10.0.0.5:5000/team/hello:2" } } },
        ["Logs"] = new V1.LogsRequest { App = "hello", Entrypoint = "web", Follow = true },
    };

    [Fact]
    public void Every_method_of_the_service_has_an_entry_in_the_scope_table()
    {
        var methods = V1.Core.Descriptor.Methods.Select(m => m.Name).ToList();
        var missing = methods.Where(m => !ScopeTable.Methods.ContainsKey(m)).ToList();
        Assert.True(missing.Count == 0, $"no entry in ScopeTable.Methods for {string.Join(", ", missing)}: say what each needs");
        Assert.Empty(ScopeTable.Methods.Keys.Except(methods)); // nothing stale either
        Assert.Equal(Need.Admin, ScopeTable.For("/edgeeru.core.v1.Core/NotAMethod").Need);
    }

    [Fact]
    public void Every_method_that_needs_deploy_finds_the_app_in_its_request()
    {
        var deploying = ScopeTable.Methods.Where(m => m.Value.Need == Need.Deploy).Select(m => m.Key).Order().ToList();
        Assert.Equal(deploying, HelloRequests.Keys.Order().ToList());
        foreach (var (method, request) in HelloRequests)
        {
            // The request is of the method's own input type (the table and the cases cannot drift apart).
            Assert.Equal(V1.Core.Descriptor.FindMethodByName(method).InputType.ClrType, request.GetType());
            var (apps, refusal) = RequestApps.Of(request, Records);
            Assert.Null(refusal);
            Assert.Equal(["hello"], apps);
            Assert.Null(ScopeTable.Missing(["deploy:hello"], Need.Deploy, apps));
            Assert.Equal("deploy:hello", ScopeTable.Missing(["deploy:shop", "read"], Need.Deploy, apps));
        }
    }

    [Fact]
    public void Each_scope_allows_what_it_names_and_nothing_more()
    {
        string[] read = ["read"], hello = ["deploy:hello"], admin = ["admin"];
        Assert.Null(ScopeTable.Missing(read, Need.Read, []));
        Assert.Equal("deploy:hello", ScopeTable.Missing(read, Need.Deploy, ["hello"]));
        Assert.Equal("admin", ScopeTable.Missing(read, Need.Admin, []));

        Assert.Equal("read", ScopeTable.Missing(hello, Need.Read, [])); // deploy does not imply read: give both
        Assert.Null(ScopeTable.Missing(hello, Need.Deploy, ["hello"]));
        Assert.Equal("deploy:shop", ScopeTable.Missing(hello, Need.Deploy, ["hello", "shop"]));
        Assert.StartsWith("deploy:APP", ScopeTable.Missing(hello, Need.Deploy, []), StringComparison.Ordinal);
        Assert.Equal("admin", ScopeTable.Missing(hello, Need.Admin, []));

        foreach (var need in Enum.GetValues<Need>()) Assert.Null(ScopeTable.Missing(admin, need, ["any"]));
        Assert.True(ScopeTable.DeploysAny(hello));
        Assert.False(ScopeTable.DeploysAny(read));

        foreach (var m in new[] { "AddPod", "AddNode", "SetSecret", "ListSecrets", "SetRegistryAuth", "CreateToken", "ListTokens" })
            Assert.Equal(Need.Admin, ScopeTable.Methods[m].Need);
        foreach (var m in new[] { "PutSshUser", "DeleteSshUser", "PutDnsRecords", "DeleteDnsRecords" })
            Assert.Equal(new MethodRule(Need.Admin, true), ScopeTable.Methods[m]);
        foreach (var m in new[]
            { "ListPods", "ListNodes", "ListWorkloads", "Capacity", "WatchWorkloads", "WatchNodes", "ListSshUsers", "ListDnsRecords" })
            Assert.Equal(new MethodRule(Need.Read, false), ScopeTable.Methods[m]);
    }

    [Fact]
    public void Workload_references_resolve_as_the_calls_take_them()
    {
        string[] Apps(bool byApp, params string[] refs) =>
            [.. WorkloadRefs.Resolve(refs, Records, byApp).Workloads.Select(w => w.Name)];

        Assert.Equal(["hello_web_3f2a9c"], Apps(false, "3f2a9c0d5e7b41a8"));
        Assert.Equal(["shop_web_9b8c7d"], Apps(false, "shop_web_9b8c7d", "9b8c7d")); // each once
        Assert.Equal(["hello_web_3f2a9c", "hello_worker_3f2a9c"], Apps(true, "hello"));
        Assert.Equal(["hello_worker_3f2a9c"], Apps(true, "hello.worker"));

        var ambiguous = WorkloadRefs.Resolve(["3f2a9c"], Records, false).Refusal;
        Assert.Equal(StatusCode.InvalidArgument, ambiguous?.Code);
        Assert.Equal(StatusCode.NotFound, WorkloadRefs.Resolve(["hello"], Records, false).Refusal?.Code); // an app only for realloc
        Assert.Equal(StatusCode.NotFound, WorkloadRefs.Resolve(["nope.web"], Records, true).Refusal?.Code);
        Assert.Equal(StatusCode.InvalidArgument, WorkloadRefs.Resolve([], Records, false).Refusal?.Code);

        // A call on workloads of two apps needs both.
        var (apps, _) = RequestApps.Of(new V1.RemoveRequest { Workloads = { "shop_web_9b8c7d", "hello_web_3f2a9c" } }, Records);
        Assert.Equal(["hello", "shop"], apps);
    }

    [Theory]
    [InlineData("hello", "hello")]
    [InlineData("hello:2", "hello")]
    [InlineData("10.0.0.5:5000/team/hello:2", "hello")]
    [InlineData("registry.local/hello@sha256:0a1b", "hello")]
    [InlineData("localhost:5000/hello", "hello")]
    public void A_build_belongs_to_the_app_its_image_is_named_after(string image, string app) =>
        Assert.Equal(app, RequestApps.ImageApp(image));

    [Fact]
    public void Audit_targets_name_what_a_call_acts_on_and_never_a_secret()
    {
        Assert.Equal("hello.web", RequestApps.Target(new V1.DeployRequest { App = "hello", Entrypoint = "web" }));
        Assert.Equal("stop a,b", RequestApps.Target(new V1.ControlRequest { Action = V1.ControlAction.Stop, Workloads = { "a", "b" } }));
        var secret = new V1.SetSecretRequest { Name = "db-password", Content = ByteString.CopyFromUtf8("hunter2") };
        Assert.Equal("db-password", RequestApps.Target(secret));
        var auth = new V1.SetRegistryAuthRequest { Host = "r.local", User = "u", Password = "hunter2" };
        Assert.DoesNotContain("hunter2", RequestApps.Target(auth), StringComparison.Ordinal);

        var line = new AuditEntry(new DateTimeOffset(2026, 11, 26, 9, 30, 0, TimeSpan.Zero), "ci-hello", "Deploy", ["hello"], "hello.web",
            "OK", null, "ipv4:127.0.0.1:5000", 12.34).ToJson();
        Assert.Equal("{'time':'2026-11-26T09:30:00.000Z','who':'ci-hello','method':'Deploy','apps':['hello'],'target':'hello.web'," +
            "'outcome':'OK','peer':'ipv4:127.0.0.1:5000','ms':12.3}", line.Replace('"', '\''));
    }

    [Fact]
    public void Token_strings_carry_the_name_and_a_secret_that_only_its_hash_matches()
    {
        var (token, sha256) = TokenSecret.New("ci-hello");
        Assert.StartsWith("eru.ci-hello.", token, StringComparison.Ordinal);
        Assert.True(TokenSecret.TryParse(token, out var name, out var secret));
        Assert.Equal("ci-hello", name);
        Assert.Equal(32, secret.Length);
        var stored = new ApiToken { Name = "ci-hello", SecretSha256 = sha256, Scopes = ["read"], CreatedBy = "bootstrap" };
        Assert.True(TokenSecret.Matches(stored, secret));
        secret[0] ^= 1;
        Assert.False(TokenSecret.Matches(stored, secret));
        Assert.NotEqual(TokenSecret.New("ci-hello").Token, token); // random each time

        foreach (var bad in new[] { "", "s3cret-token", "eru.ci-hello", "eru.Ci.AAAA", "eru.ci." + new string('A', 42), token + "A" })
            Assert.False(TokenSecret.TryParse(bad, out _, out _), bad);
    }

    [Theory]
    [InlineData("read", true)]
    [InlineData("admin", true)]
    [InlineData("deploy:hello", true)]
    [InlineData("deploy:", false)]
    [InlineData("deploy:Hello", false)]
    [InlineData("write", false)]
    public void Scopes_are_read_deploy_app_or_admin(string scope, bool valid) => Assert.Equal(valid, TokenScopes.IsValid(scope));

    private static Workload Record(string id, string name, string app, string entrypoint) => new()
    {
        Id = id, Name = name, App = app, Entrypoint = entrypoint, Ident = name[^6..], Pod = "dev", Node = "h1", Image = "busybox",
    };
}
