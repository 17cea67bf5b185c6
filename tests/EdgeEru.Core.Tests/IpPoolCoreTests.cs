using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>
/// eru-core and routed networks' pools (real etcd, Core in process): the pool of Core:IpPools is recorded at start,
/// a recorded pool with another range stops the start, a bad setting is refused naming it, a removed node's block is freed.
/// </summary>
public sealed class IpPoolCoreTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private const string Token = "bootstrap-token";
    private readonly string _prefix = EtcdFixture.NewPrefix();
    private readonly List<EtcdConnection> _conns = [];

    private RegistryStore Store()
    {
        var conn = new EtcdConnection(etcd.Options(_prefix));
        _conns.Add(conn);
        return new RegistryStore(conn);
    }

    private WebApplication Core(string url, params string[] pool) => CoreHost.Create(
        ["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", _prefix, "--Core:Urls", url, "--Core:Token", Token,
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", .. pool],
        l => l.AddProvider(new XunitLoggerProvider(output)));

    private static string[] Pool(string cidr, string blockSize = "26") =>
        ["--Core:IpPools:eru-routed:Cidr", cidr, "--Core:IpPools:eru-routed:BlockSize", blockSize];

    [Fact]
    public async Task The_pool_is_recorded_at_start_kept_across_restarts_and_a_removed_nodes_block_is_freed()
    {
        var store = Store();
        var url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        await using (var core = Core(url, Pool("198.19.0.0/24")))
        {
            await core.StartAsync();
            var recorded = (await store.GetAsync(Kinds.IpPools, "eru-routed"))!.Value;
            Assert.Equal(("198.19.0.0/24", 26), (recorded.Cidr, recorded.BlockSize));
            Assert.Empty(recorded.Blocks);
        }

        // Nodes that ran containers hold blocks (as a deploy records them); Core starts again with the same pool.
        foreach (var n in new[] { "h1", "h2" })
            await store.PutAsync(Kinds.Nodes, new Node
            {
                Name = n, Pod = "dev", Endpoint = new DockerEndpoint { Address = "unix:///run/none.sock" }, Networks = ["eru-routed"],
            });
        await store.UpdateAsync(Kinds.IpPools, "eru-routed", p => p! with
        {
            Blocks = StringMap.Of(("h1", "198.19.0.0/26"), ("h2", "198.19.0.64/26")),
        });
        await using (var core = Core(url, Pool("198.19.0.0/24")))
        {
            await core.StartAsync();
            Assert.Equal(2, (await store.GetAsync(Kinds.IpPools, "eru-routed"))!.Value.Blocks.Count); // kept
            using var channel = GrpcChannel.ForAddress(url);
            await CoreTokens.Client(channel, Token).RemoveNodeAsync(new V1.RemoveNodeRequest { Name = "h1" });
            var blocks = (await store.GetAsync(Kinds.IpPools, "eru-routed"))!.Value.Blocks;
            Assert.Equal(["h2"], blocks.Keys);
            Assert.Equal("198.19.0.64/26", blocks["h2"]);
        }

        // Another range for the recorded pool: Core does not start, and says why.
        await using var changed = Core(url, Pool("198.19.1.0/24"));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => changed.StartAsync());
        Assert.Equal("ip pool eru-routed is recorded as 198.19.0.0/24 in /26 blocks (1 given to nodes), "
            + "not 198.19.1.0/24 in /26 blocks: a pool in use is not changed", ex.Message);
    }

    [Theory]
    [InlineData("198.19.0.7/24", "26", "cidr \"198.19.0.7/24\" is not an IPv4 network in canonical form")]
    [InlineData("198.19.0.0/24", "x", "Core:IpPools:eru-routed:BlockSize: \"x\" is not a prefix length")]
    [InlineData("198.19.0.0/24", "31", "block_size 31 must be between 16 and 30")]
    public void A_bad_pool_setting_stops_the_start_naming_it(string cidr, string blockSize, string problem)
    {
        var ex = Assert.Throws<ArgumentException>(() => Core($"http://127.0.0.1:{Ports.FreeTcp()}", Pool(cidr, blockSize)));
        Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("Core:IpPools:eru-routed", ex.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (var c in _conns) c.Dispose();
    }
}
