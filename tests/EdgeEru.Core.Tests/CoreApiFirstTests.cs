using System.Text.Json;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>
/// The CLI needs only Core's API: workloads and nodes listed and watched, SSH users and static DNS records read and
/// written through eru-core (real etcd, records written as Core and the agents write them), and eru with no etcd.
/// </summary>
public sealed class CoreApiFirstTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private const string Bootstrap = "bootstrap-token";
    private const string AgentToken = "agent-token";
    private const string OpsKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPu+0Hcve7gZNwdjyd3yxaAi6Fr+9VsrNZulrAR5JGAW ops@laptop";

    // Nothing listens there: a CLI that still read etcd would fail.
    private static readonly Dictionary<string, string?> NoEtcd = new() { ["ERU_ETCD"] = "http://127.0.0.1:1" };

    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-apifirst-").FullName;
    private WebApplication _core = null!;
    private string _url = "";
    private GrpcChannel _channel = null!;
    private EtcdConnection _conn = null!;
    private RegistryStore _store = null!;

    private string AuditFile => Path.Combine(_dir, "core.jsonl");

    public async Task InitializeAsync()
    {
        var prefix = EtcdFixture.NewPrefix();
        _conn = new EtcdConnection(etcd.Options(prefix));
        _store = new RegistryStore(_conn);
        _url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix, "--Core:Urls", _url,
            "--Core:Token", Bootstrap, "--Core:AgentToken", AgentToken, "--Core:AuditLog", AuditFile,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"],
            l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
        _channel = GrpcChannel.ForAddress(_url);
        await _store.PutAsync(Kinds.Pods, new Pod { Name = "dev" });
        await _store.PutAsync(Kinds.Nodes, Node("h1"));
        await _store.PutAsync(Kinds.NodeStatus,
            new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow, AgentUrl = "http://198.18.0.1:9190" },
            (await _store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
    }

    private static Node Node(string name) => new()
    {
        Name = name, Pod = "dev", Endpoint = new DockerEndpoint { Address = "unix:///run/none.sock" },
        Capacity = new NodeCapacity { CpuCores = 2, MemoryBytes = 1L << 30 },
    };

    private static Workload Workload(string app, string ident, string ip) => new()
    {
        Id = ident + new string('0', 58), Name = $"{app}_web_{ident}", App = app, Entrypoint = "web", Ident = ident, Pod = "dev",
        Node = "h1", Image = "busybox:1", Tags = ["v1"], Networks = StringMap.From(new Dictionary<string, string> { ["eru-mv"] = ip }),
        CreatedAt = DateTimeOffset.UtcNow.AddMinutes(-3),
    };

    /// <summary>A workload and, when <paramref name="live"/>, the agent's status that makes it live.</summary>
    private async Task<Workload> AddAsync(string app, string ident, string ip, bool live)
    {
        var w = Workload(app, ident, ip);
        await _store.PutAsync(Kinds.Workloads, w);
        if (live)
            await _store.PutAsync(Kinds.WorkloadStatus, new WorkloadStatus
            {
                Id = w.Id, Node = "h1", Running = true, Healthy = true, CheckedAt = DateTimeOffset.UtcNow,
                Addresses = StringMap.From(new Dictionary<string, string> { ["eru-mv"] = ip }),
            }, (await _store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
        return w;
    }

    private V1.Core.CoreClient Client(string token) => CoreTokens.Client(_channel, token);

    [Fact]
    public async Task Eru_ps_lists_through_core_with_liveness_keeping_its_json_and_needs_no_etcd()
    {
        var live = await AddAsync("hello", "a1b2c3", "198.18.0.7", live: true);
        var down = await AddAsync("hello", "d4e5f6", "198.18.0.8", live: false);
        await AddAsync("shop", "0a0b0c", "198.18.0.9", live: true);
        var reader = await CoreTokens.CreateAsync(Client(Bootstrap), "reader", ["read"]);

        var (code, stdout, _) = await EruCli.RunAsync(output, null, NoEtcd, "ps", "hello", "--json", "--core", _url, "--token", reader);
        Assert.Equal(0, code);
        var rows = JsonDocument.Parse(stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal([live.Name, down.Name], rows.Select(r => r.GetProperty("name").GetString()));
        Assert.All(rows, r => Assert.Equal(
            ["name", "id", "app", "entrypoint", "ident", "node", "image", "tags", "addresses", "addresses6", "live", "state", "created"],
            r.EnumerateObject().Select(p => p.Name)));
        var first = rows[0];
        Assert.Equal(live.Id, first.GetProperty("id").GetString());
        Assert.Equal("h1", first.GetProperty("node").GetString());
        Assert.Equal("busybox:1", first.GetProperty("image").GetString());
        Assert.Equal(["v1"], first.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal("198.18.0.7", first.GetProperty("addresses").GetProperty("eru-mv").GetString());
        Assert.True(first.GetProperty("live").GetBoolean());
        Assert.Equal("live", first.GetProperty("state").GetString());
        Assert.Equal(live.CreatedAt, DateTimeOffset.Parse(first.GetProperty("created").GetString()!,
            System.Globalization.CultureInfo.InvariantCulture));
        Assert.False(rows[1].GetProperty("live").GetBoolean());
        Assert.Contains("status", rows[1].GetProperty("state").GetString(), StringComparison.Ordinal);

        // The table; the old --etcd and --prefix are accepted (and ignored) for a release.
        var table = await EruCli.RunAsync(output, null, NoEtcd,
            "ps", "--core", _url, "--token", reader, "--etcd", "http://127.0.0.1:1", "--prefix", "/old");
        Assert.Equal(0, table.Code);
        Assert.Contains(live.Name, table.Stdout, StringComparison.Ordinal);
        Assert.Contains("shop_web_0a0b0c", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("198.18.0.7", table.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"hello_web_a1b2c3\s+h1\s+198\.18\.0\.7\s+v1\s+live\s+\d+m", table.Stdout);

        // Failover between replicas is kept: a dead URL first, then this one.
        var dead = $"http://127.0.0.1:{Ports.FreeTcp()}";
        var failover = await EruCli.RunAsync(output, null, NoEtcd, "ps", "--json", "--core", $"{dead},{_url}", "--token", reader);
        Assert.Equal(0, failover.Code);
        Assert.Equal(3, JsonDocument.Parse(failover.Stdout).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Watches_send_a_snapshot_then_changes_and_resume_from_a_synced_revision()
    {
        var reader = Client(await CoreTokens.CreateAsync(Client(Bootstrap), "watcher", ["read"]));
        var one = await AddAsync("hello", "a1b2c3", "198.18.0.7", live: true);

        // What Core waits for when etcd's revision is a write outside its prefix (another installation's), which its
        // watcher never sees: the last write under the prefix.
        var mine = await _store.PutAsync(Kinds.Nodes, Node("h9"));
        using (var other = new EtcdConnection(etcd.Options(EtcdFixture.NewPrefix())))
            await new RegistryStore(other).PutAsync(Kinds.Pods, new Pod { Name = "elsewhere" });
        Assert.Equal(mine, await _store.LatestWriteAsync());
        Assert.True(await _store.DeleteAsync(Kinds.Nodes, "h9"));
        Assert.NotEmpty((await reader.ListWorkloadsAsync(new V1.ListWorkloadsRequest())).Workloads); // not held up by it

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = reader.WatchWorkloads(new V1.WatchWorkloadsRequest { Filter = new V1.ListWorkloadsRequest { App = "hello" } },
            cancellationToken: cts.Token);
        var batch = await UntilSynced(call.ResponseStream, cts.Token);
        Assert.True(batch[0].Reset);
        Assert.Equal(one.Name, Assert.Single(batch, e => e.Put is not null).Put.Name);
        Assert.True(Assert.Single(batch, e => e.Put is not null).Put.Live);

        // A new workload, a status that goes: puts; a removed record: its id. Other apps are filtered out.
        var two = await AddAsync("hello", "d4e5f6", "198.18.0.8", live: false);
        await AddAsync("shop", "0a0b0c", "198.18.0.9", live: false);
        var seen = await UntilAsync(call.ResponseStream, e => e.Put?.Id == two.Id, cts.Token);
        Assert.DoesNotContain(seen, e => e.Put?.App == "shop");
        Assert.False(seen.Last().Put.Live);
        await _store.PutAsync(Kinds.WorkloadStatus, new WorkloadStatus { Id = one.Id, Node = "h1", Running = false },
            (await _store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
        var stopped = (await UntilAsync(call.ResponseStream, e => e.Put?.Id == one.Id, cts.Token)).Last().Put;
        Assert.Equal((false, "not running"), (stopped.Live, stopped.Reason));
        await _store.DeleteAsync(Kinds.Workloads, one.Id);
        await UntilAsync(call.ResponseStream, e => e.Deleted == one.Id, cts.Token);
        var synced = (await UntilSynced(call.ResponseStream, cts.Token)).Last().Revision;
        call.Dispose();

        // Resumed from the synced revision: only what changed since, no reset.
        var three = await AddAsync("hello", "f0f0f0", "198.18.0.10", live: false);
        await _store.DeleteAsync(Kinds.Workloads, two.Id);
        using var resumed = reader.WatchWorkloads(new V1.WatchWorkloadsRequest
        {
            Filter = new V1.ListWorkloadsRequest { App = "hello" }, SinceRevision = synced,
        }, cancellationToken: cts.Token);
        batch = await UntilSynced(resumed.ResponseStream, cts.Token);
        Assert.DoesNotContain(batch, e => e.Reset);
        Assert.Equal([three.Id], batch.Where(e => e.Put is not null).Select(e => e.Put.Id));
        Assert.Equal([two.Id], batch.Where(e => e.Deleted.Length > 0).Select(e => e.Deleted));

        // From a revision this replica does not hold: a reset and the whole set.
        using var old = reader.WatchWorkloads(new V1.WatchWorkloadsRequest { SinceRevision = 1 }, cancellationToken: cts.Token);
        batch = await UntilSynced(old.ResponseStream, cts.Token);
        Assert.True(batch[0].Reset);
        Assert.Equal(2, batch.Count(e => e.Put is not null));

        // Nodes: liveness and the agent's URL, then a new node.
        using var nodes = reader.WatchNodes(new V1.WatchNodesRequest { Pod = "dev" }, cancellationToken: cts.Token);
        var nodeBatch = await UntilSynced(nodes.ResponseStream, cts.Token);
        Assert.True(nodeBatch[0].Reset);
        var h1 = Assert.Single(nodeBatch, e => e.Put is not null).Put;
        Assert.True(h1.Alive);
        Assert.Equal("http://198.18.0.1:9190", h1.AgentUrl);
        Assert.Equal(2, h1.Workloads);
        await _store.PutAsync(Kinds.Nodes, Node("h2"));
        var h2 = (await UntilAsync(nodes.ResponseStream, e => e.Put?.Name == "h2", cts.Token)).Last().Put;
        Assert.False(h2.Alive);
        Assert.Equal("http://198.18.0.1:9190", (await reader.ListNodesAsync(new V1.ListNodesRequest())).Nodes[0].AgentUrl);
    }

    [Fact]
    public async Task Ssh_users_and_dns_records_are_read_with_read_and_written_with_admin_only()
    {
        var admin = Client(Bootstrap);
        var reader = Client(await CoreTokens.CreateAsync(admin, "reader", ["read"]));
        var user = new V1.SshUser { Name = "ops", Keys = { OpsKey }, Apps = { ["hello"] = new V1.SshAppAccess { Shell = true } } };

        await CoreTokens.Refused(StatusCode.PermissionDenied, "PutSshUser needs scope admin; token reader has read",
            reader.PutSshUserAsync(new V1.PutSshUserRequest { User = user }));
        var written = await admin.PutSshUserAsync(new V1.PutSshUserRequest { User = user, CreateOnly = true });
        Assert.True(written.Revision > 0);
        await CoreTokens.Refused(StatusCode.AlreadyExists, "ssh user ops exists already",
            admin.PutSshUserAsync(new V1.PutSshUserRequest { User = user, CreateOnly = true }));
        var listed = Assert.Single((await reader.ListSshUsersAsync(new V1.ListSshUsersRequest())).Users);
        Assert.Equal([OpsKey], listed.Keys);
        Assert.True(listed.Apps["hello"].Shell);
        Assert.Equal(written.Revision, listed.Revision);
        Assert.Equal([OpsKey], (await _store.GetAsync(Kinds.SshUsers, "ops"))!.Value.Keys);

        // Read-modify-write: a stale revision is refused, the current one accepted.
        listed.Apps["*"] = new V1.SshAppAccess { Shell = false, User = "1000" };
        var changed = await admin.PutSshUserAsync(new V1.PutSshUserRequest { User = listed, IfRevision = listed.Revision });
        await CoreTokens.Refused(StatusCode.FailedPrecondition, "changed meanwhile",
            admin.PutSshUserAsync(new V1.PutSshUserRequest { User = listed, IfRevision = written.Revision }));
        Assert.Equal("1000", (await _store.GetAsync(Kinds.SshUsers, "ops"))!.Value.Apps["*"].User);
        Assert.True(changed.Revision > written.Revision);
        await CoreTokens.Refused(StatusCode.InvalidArgument, "key 1",
            admin.PutSshUserAsync(new V1.PutSshUserRequest { User = new V1.SshUser { Name = "bad", Keys = { "ssh-ed25519 nope" } } }));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "DeleteSshUser needs scope admin",
            reader.DeleteSshUserAsync(new V1.DeleteSshUserRequest { Name = "ops" }));
        await admin.DeleteSshUserAsync(new V1.DeleteSshUserRequest { Name = "ops" });
        await CoreTokens.Refused(StatusCode.NotFound, "no ssh user ops",
            admin.DeleteSshUserAsync(new V1.DeleteSshUserRequest { Name = "ops" }));

        var db = new V1.DnsRecordSet { Name = "db.eru", Records = { new V1.DnsRecord { Type = "A", Value = "198.18.0.5" } } };
        await CoreTokens.Refused(StatusCode.PermissionDenied, "PutDnsRecords needs scope admin",
            reader.PutDnsRecordsAsync(new V1.PutDnsRecordsRequest { Set = db }));
        Assert.Equal(60u, (await admin.PutDnsRecordsAsync(new V1.PutDnsRecordsRequest { Set = db })).Records[0].Ttl);
        var sets = (await reader.ListDnsRecordsAsync(new V1.ListDnsRecordsRequest())).Sets;
        Assert.Equal("198.18.0.5", Assert.Single(sets).Records[0].Value);
        Assert.Equal("A", (await _store.GetAsync(Kinds.DnsRecords, "db.eru"))!.Value.Records[0].Type);
        await CoreTokens.Refused(StatusCode.InvalidArgument, "not an IPv4 address", admin.PutDnsRecordsAsync(new V1.PutDnsRecordsRequest
        {
            Set = new V1.DnsRecordSet { Name = "x.eru", Records = { new V1.DnsRecord { Type = "A", Value = "nope" } } },
        }));
        await CoreTokens.Refused(StatusCode.PermissionDenied, "DeleteDnsRecords needs scope admin",
            reader.DeleteDnsRecordsAsync(new V1.DeleteDnsRecordsRequest { Name = "db.eru" }));
        await admin.DeleteDnsRecordsAsync(new V1.DeleteDnsRecordsRequest { Name = "db.eru" });
        Assert.Null(await _store.GetAsync(Kinds.DnsRecords, "db.eru"));

        // Writes and refused writes are audited with what they named; lists are not.
        var lines = CoreTokens.AuditLines(AuditFile);
        Assert.Contains(lines, l => l.Who == "reader" && l.Method == "PutSshUser" && l.Target == "ops" && l.Outcome == "PermissionDenied");
        Assert.Contains(lines, l => l.Who == "bootstrap" && l.Method == "PutSshUser" && l.Target == "ops" && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Method == "PutSshUser" && l.Outcome == "FailedPrecondition");
        Assert.Contains(lines, l => l.Method == "DeleteSshUser" && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Method == "PutDnsRecords" && l.Target == "db.eru" && l.Outcome == "OK");
        Assert.Contains(lines, l => l.Method == "DeleteDnsRecords" && l.Target == "db.eru" && l.Outcome == "OK");
        Assert.DoesNotContain(lines, l => l.Method is "ListSshUsers" or "ListDnsRecords");
    }

    [Fact]
    public async Task Eru_ssh_user_and_eru_dns_work_through_core_alone()
    {
        var reader = await CoreTokens.CreateAsync(Client(Bootstrap), "reader", ["read"]);
        var keyFile = Path.Combine(_dir, "id.pub");
        await File.WriteAllTextAsync(keyFile, OpsKey.Replace("ops@laptop", "second", StringComparison.Ordinal) + "\n");
        Task<(int Code, string Stdout, string Stderr)> Eru(string token, params string[] args) =>
            EruCli.RunAsync(output, null, NoEtcd, [.. args, "--core", _url, "--token", token]);

        Assert.Equal(0, (await Eru(Bootstrap, "ssh-user", "add", "ops", "--key", OpsKey, "--app", "hello:exec:1000")).Code);
        var again = await Eru(Bootstrap, "ssh-user", "add", "ops", "--key", OpsKey);
        Assert.Equal(1, again.Code);
        Assert.Contains("AlreadyExists: ssh user ops exists already", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await Eru(Bootstrap, "ssh-user", "key", "add", "ops", "--key-file", keyFile)).Code);
        Assert.Equal(0, (await Eru(Bootstrap, "ssh-user", "allow", "ops", "--app", "*")).Code);
        var stored = (await _store.GetAsync(Kinds.SshUsers, "ops"))!.Value;
        Assert.Equal(2, stored.Keys.Length);
        Assert.False(stored.Apps["hello"].Shell);
        Assert.Equal("1000", stored.Apps["hello"].User);
        Assert.True(stored.Apps["*"].Shell);

        var ls = await Eru(reader, "ssh-user", "ls");
        Assert.Equal(0, ls.Code);
        Assert.Matches(@"ops\s+\*,hello:exec:1000\s+SHA256:", ls.Stdout);
        var denied = await Eru(reader, "ssh-user", "rm", "ops");
        Assert.Equal(1, denied.Code);
        Assert.Contains("PermissionDenied: DeleteSshUser needs scope admin", denied.Stderr, StringComparison.Ordinal);
        var badKey = await Eru(Bootstrap, "ssh-user", "add", "x", "--key", "ssh-ed25519 nope");
        Assert.Equal(2, badKey.Code);
        Assert.Equal(0, (await Eru(Bootstrap, "ssh-user", "rm", "ops", "--etcd", "http://127.0.0.1:1")).Code);
        Assert.Null(await _store.GetAsync(Kinds.SshUsers, "ops"));

        var set = await Eru(Bootstrap, "dns", "set", "db.eru", "--record", "A 198.18.0.5", "--record", "TXT primary", "--ttl", "30");
        Assert.Equal(0, set.Code);
        var records = (await _store.GetAsync(Kinds.DnsRecords, "db.eru"))!.Value.Records;
        Assert.Equal(["A 198.18.0.5 30", "TXT primary 30"], records.Select(r => $"{r.Type} {r.Value} {r.Ttl}"));
        var dnsLs = await Eru(reader, "dns", "ls");
        Assert.Equal(0, dnsLs.Code);
        Assert.Matches(@"db\.eru\s+TXT\s+primary\s+30", dnsLs.Stdout);
        var dnsDenied = await Eru(reader, "dns", "set", "x.eru", "--record", "A 198.18.0.6");
        Assert.Equal(1, dnsDenied.Code);
        Assert.Contains("PermissionDenied: PutDnsRecords needs scope admin", dnsDenied.Stderr, StringComparison.Ordinal);
        var bad = await Eru(Bootstrap, "dns", "set", "x.eru", "--record", "A nope");
        Assert.Equal(2, bad.Code);
        Assert.Contains("not an IPv4 address", bad.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await Eru(Bootstrap, "dns", "rm", "db.eru")).Code);
        Assert.Null(await _store.GetAsync(Kinds.DnsRecords, "db.eru"));
    }

    [Fact]
    public async Task Eru_logs_is_relayed_by_core_with_the_agents_token_for_a_deploy_scope_only()
    {
        // An agent's log API as eru-agent serves it: the tail, an empty line, then live lines (none here: no follow).
        var agentUrl = $"http://127.0.0.1:{Ports.FreeTcp()}";
        await using var agent = WebApplication.Create();
        agent.Urls.Add(agentUrl);
        var presented = new List<string>();
        agent.MapGet("/logs", async (HttpContext http) =>
        {
            lock (presented) presented.Add(http.Request.Headers.Authorization.ToString());
            if (http.Request.Headers.Authorization != "Bearer " + AgentToken) return Results.Unauthorized();
            var app = http.Request.Query["app"].ToString();
            string[] times = ["09:30:02", "09:30:01"];
            await http.Response.WriteAsync(string.Concat(times.Select(t =>
                $"{{\"time\":\"2026-11-26T{t}Z\",\"app\":\"{app}\",\"entrypoint\":\"web\",\"ident\":\"a1b2c3\","
                + $"\"node\":\"h1\",\"stream\":\"stdout\",\"line\":\"at {t}\"}}\n")) + "\n");
            return Results.Empty;
        });
        await agent.StartAsync();
        await _store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = "h1", HeartbeatAt = DateTimeOffset.UtcNow, AgentUrl = agentUrl },
            (await _store.GrantLeaseAsync(TimeSpan.FromMinutes(5))).Id);
        await AddAsync("hello", "a1b2c3", "198.18.0.7", live: true);
        var admin = Client(Bootstrap);
        var ci = await CoreTokens.CreateAsync(admin, "ci-hello", ["deploy:hello"]);
        var reader = await CoreTokens.CreateAsync(admin, "reader", ["read"]);

        var (code, stdout, stderr) = await EruCli.RunAsync(output, null, NoEtcd, "logs", "hello", "--core", _url, "--token", ci);
        Assert.True(code == 0, stderr);
        Assert.Equal(["09:30:01.000 web.a1b2c3@h1 at 09:30:01", "09:30:02.000 web.a1b2c3@h1 at 09:30:02"],
            stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // merged by time
        var json = await EruCli.RunAsync(output, null, NoEtcd, "logs", "hello.web", "--json", "--core", _url, "--token", ci);
        Assert.Equal(0, json.Code);
        Assert.All(json.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            l => Assert.Equal("hello", JsonDocument.Parse(l).RootElement.GetProperty("app").GetString()));
        lock (presented) Assert.All(presented, h => Assert.Equal("Bearer " + AgentToken, h)); // Core's, never the caller's

        // Output is its app's: a read token, or another app's deploy token, is refused.
        var denied = await EruCli.RunAsync(output, null, NoEtcd, "logs", "hello", "--core", _url, "--token", reader);
        Assert.Equal(1, denied.Code);
        Assert.Contains("PermissionDenied: Logs needs scope deploy:hello", denied.Stderr, StringComparison.Ordinal);
        var nobody = await EruCli.RunAsync(output, null, NoEtcd, "logs", "other", "--core", _url, "--token", Bootstrap);
        Assert.Equal(1, nobody.Code);
        Assert.Contains("no agent to ask about other", nobody.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, (await EruCli.RunAsync(output, null, NoEtcd, "logs", "a.b.c", "--core", _url, "--token", Bootstrap)).Code);
        Assert.DoesNotContain(CoreTokens.AuditLines(AuditFile), l => l.Method == "Logs"); // a read: not audited
    }

    private static Task<List<V1.WorkloadEvent>> UntilSynced(IAsyncStreamReader<V1.WorkloadEvent> stream, CancellationToken ct) =>
        UntilAsync(stream, e => e.Synced, ct);

    private static Task<List<V1.NodeEvent>> UntilSynced(IAsyncStreamReader<V1.NodeEvent> stream, CancellationToken ct) =>
        UntilAsync(stream, e => e.Synced, ct);

    /// <summary>Events up to and including the first that <paramref name="last"/> accepts.</summary>
    private static async Task<List<T>> UntilAsync<T>(IAsyncStreamReader<T> stream, Func<T, bool> last, CancellationToken ct)
    {
        var list = new List<T>();
        while (await stream.MoveNext(ct))
        {
            list.Add(stream.Current);
            if (last(stream.Current)) return list;
        }
        throw new InvalidOperationException("the watch ended");
    }

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
