using System.Text.Json;
using EdgeEru.Core.Server;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using EdgeEru.Dev;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Two datacenters, each with its own eru-core and registry (docs/multi-dc.md): Core names its registry's datacenter and
/// will not write into another one's; the CLI reaches each through the datacenters file (<c>--dc</c>, <c>ps --all-dcs</c>).
/// </summary>
public sealed class CoreDatacentersTests(EtcdFixture etcd, ITestOutputHelper output)
    : IClassFixture<EtcdFixture>, IAsyncLifetime, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-core-dcs-").FullName;
    private readonly List<WebApplication> _cores = [];
    private readonly List<EtcdConnection> _conns = [];
    private readonly Dictionary<string, (string Prefix, string Url, RegistryStore Store)> _dcs = [];

    public async Task InitializeAsync()
    {
        foreach (var dc in new[] { "dc1", "dc2" })
        {
            var prefix = EtcdFixture.NewPrefix();
            var (core, url) = StartCore(prefix, dc);
            await core.StartAsync();
            var conn = new EtcdConnection(etcd.Options(prefix));
            _conns.Add(conn);
            _dcs[dc] = (prefix, url, new RegistryStore(conn));
        }
        await File.WriteAllTextAsync(Path.Combine(_dir, "datacenters.json"), JsonSerializer.Serialize(new
        {
            datacenters = _dcs.Select(d => new { name = d.Key, core = d.Value.Url, token = "token-" + d.Key }),
        }));
    }

    private (WebApplication Core, string Url) StartCore(string prefix, string datacenter)
    {
        var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        var core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix, "--Core:Urls", url,
            "--Core:Token", "token-" + datacenter, "--Core:Datacenter", datacenter, "--Core:AuditLog", Path.Combine(_dir, prefix[1..]),
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"], l => l.AddProvider(new XunitLoggerProvider(output)));
        _cores.Add(core);
        return (core, url);
    }

    private IReadOnlyDictionary<string, string?> Env => new Dictionary<string, string?>
    {
        ["ERU_DATACENTERS"] = Path.Combine(_dir, "datacenters.json"), ["ERU_ETCD"] = "http://127.0.0.1:1", ["ERU_CORE"] = null,
        ["ERU_TOKEN"] = null, ["ERU_DC"] = null,
    };

    private static Workload Workload(string ident) => new()
    {
        Id = ident + new string('0', 58), Name = $"hello_web_{ident}", App = "hello", Entrypoint = "web", Ident = ident, Pod = "dev",
        Node = "h1", Image = "busybox:1", Tags = ["v1"], CreatedAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task Each_core_names_its_datacenter_and_the_cli_reaches_one_or_every_datacenter()
    {
        foreach (var (dc, (_, _, store)) in _dcs)
            await Eventually.True(async () => (await store.ListAsync(Kinds.Datacenters)).Items.Select(d => d.Value.Name)
                .SequenceEqual([dc]), TimeSpan.FromSeconds(15), $"datacenter/{dc} written by its Core");
        await _dcs["dc1"].Store.PutAsync(Kinds.Workloads, Workload("aaa111"));
        await _dcs["dc2"].Store.PutAsync(Kinds.Workloads, Workload("bbb222"));

        var (code, stdout, _) = await EruCli.RunAsync(output, null, Env, "--dc", "dc2", "ps", "--json");
        Assert.Equal(0, code);
        Assert.Equal(["hello_web_bbb222"],
            JsonDocument.Parse(stdout).RootElement.EnumerateArray().Select(w => w.GetProperty("name").GetString()));

        (code, stdout, _) = await EruCli.RunAsync(output, null, Env, "ps", "--all-dcs", "--json");
        Assert.Equal(0, code);
        Assert.Equal([("dc1", "hello_web_aaa111"), ("dc2", "hello_web_bbb222")], JsonDocument.Parse(stdout).RootElement.EnumerateArray()
            .Select(w => (w.GetProperty("datacenter").GetString(), w.GetProperty("name").GetString())));
        (code, stdout, _) = await EruCli.RunAsync(output, null, Env, "ps", "--all-dcs");
        Assert.Equal(0, code);
        Assert.Contains("DATACENTER", stdout);

        var (bad, _, error) = await EruCli.RunAsync(output, null, Env, "ps", "--dc", "dc9");
        Assert.Equal(2, bad);
        Assert.Contains("lists no such datacenter (it lists dc1, dc2)", error);
    }

    [Fact]
    public async Task A_core_pointed_at_another_datacenters_registry_stops_and_says_why()
    {
        await Eventually.True(async () => (await _dcs["dc1"].Store.ListAsync(Kinds.Datacenters)).Items.Count == 1,
            TimeSpan.FromSeconds(15), "dc1 named");
        var (wrong, _) = StartCore(_dcs["dc1"].Prefix, "dc2");
        var stopped = new TaskCompletionSource();
        wrong.Lifetime.ApplicationStopping.Register(() => stopped.TrySetResult());
        try
        {
            await wrong.StartAsync();
        }
        catch (OperationCanceledException)
        {
            // The refusal came while the host was still starting: it stops, and its start is cancelled.
        }
        await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["dc1"], (await _dcs["dc1"].Store.ListAsync(Kinds.Datacenters)).Items.Select(d => d.Value.Name));
    }

    public async Task DisposeAsync()
    {
        foreach (var core in _cores)
        {
            try
            {
                await core.StopAsync();
            }
            catch (Exception ex) when (ex is OperationCanceledException or WrongDatacenterException)
            {
            }
            await core.DisposeAsync();
        }
    }

    public void Dispose()
    {
        foreach (var c in _conns) c.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
