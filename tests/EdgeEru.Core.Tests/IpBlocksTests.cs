using EdgeEru.Core.Scheduling;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>Core's IPAM for routed networks: blocks of a pool per node, addresses in a block per container.</summary>
public sealed class IpBlocksTests
{
    private static IpPool Pool(string cidr = "198.19.0.0/24", int blockSize = 26) =>
        new() { Network = "eru-routed", Cidr = cidr, BlockSize = blockSize };

    [Fact]
    public void Nodes_get_the_lowest_free_blocks_and_keep_theirs()
    {
        var (pool, h1) = IpBlocks.BlockFor(Pool(), "h1");
        (pool, var h2) = IpBlocks.BlockFor(pool, "h2");
        Assert.Equal("198.19.0.0/26", h1);
        Assert.Equal("198.19.0.64/26", h2);
        var (again, h1Again) = IpBlocks.BlockFor(pool, "h1");
        Assert.Same(pool, again); // nothing to write
        Assert.Equal(h1, h1Again);
        Assert.Empty(pool.Validate());
    }

    [Fact]
    public void A_removed_nodes_block_is_given_again()
    {
        var pool = Pool();
        foreach (var n in new[] { "h1", "h2", "h3" }) (pool, _) = IpBlocks.BlockFor(pool, n);
        pool = IpBlocks.Release(pool, "h2");
        Assert.False(pool.Blocks.ContainsKey("h2"));
        var (_, h4) = IpBlocks.BlockFor(pool, "h4");
        Assert.Equal("198.19.0.64/26", h4);
    }

    [Fact]
    public void A_full_pool_names_the_pool_and_the_node()
    {
        var pool = Pool("198.19.0.0/25");
        (pool, _) = IpBlocks.BlockFor(pool, "h1");
        (pool, _) = IpBlocks.BlockFor(pool, "h2");
        var ex = Assert.Throws<IpPoolExhaustedException>(() => IpBlocks.BlockFor(pool, "h3"));
        Assert.Equal("ip pool eru-routed (198.19.0.0/25) has no free /26 block for node h3: all 2 are taken", ex.Message);
    }

    [Fact]
    public void Addresses_skip_the_network_the_gateway_the_broadcast_and_those_in_use()
    {
        var block = "198.19.0.64/26";
        Assert.Equal("198.19.0.65", IpBlocks.Gateway(block));
        Assert.Equal("198.19.0.66", IpBlocks.PickAddress(Pool(), "h2", block, new HashSet<string>()));
        Assert.Equal("198.19.0.68", IpBlocks.PickAddress(Pool(), "h2", block, new HashSet<string> { "198.19.0.66", "198.19.0.67" }));
        Assert.False(IpBlocks.IsContainerAddress(block, "198.19.0.64"));
        Assert.False(IpBlocks.IsContainerAddress(block, "198.19.0.65"));
        Assert.True(IpBlocks.IsContainerAddress(block, "198.19.0.66"));
        Assert.True(IpBlocks.IsContainerAddress(block, "198.19.0.126"));
        Assert.False(IpBlocks.IsContainerAddress(block, "198.19.0.127"));
        Assert.False(IpBlocks.IsContainerAddress(block, "198.19.0.128"));
        Assert.False(IpBlocks.IsContainerAddress(block, "not-an-address"));
    }

    [Fact]
    public void A_full_block_names_the_node_the_block_and_the_pool()
    {
        var block = "198.19.0.0/29"; // .2 to .6 are for containers
        var used = Enumerable.Range(2, 5).Select(i => $"198.19.0.{i}").ToHashSet();
        var ex = Assert.Throws<IpPoolExhaustedException>(() => IpBlocks.PickAddress(Pool(blockSize: 29), "h1", block, used));
        Assert.Equal("node h1's block 198.19.0.0/29 of ip pool eru-routed has no free address: all 5 are in use", ex.Message);
    }

    [Fact]
    public void A_large_pool_costs_no_more_than_its_taken_blocks()
    {
        var (pool, block) = IpBlocks.BlockFor(Pool("198.18.0.0/15", 30), "h1");
        Assert.Equal("198.18.0.0/30", block);
        Assert.Equal("198.18.0.2", IpBlocks.PickAddress(pool, "h1", block, new HashSet<string>()));
    }

    [Theory]
    [InlineData("198.19.0.5/24", 26, "not an IPv4 network in canonical form")]
    [InlineData("2001:db8::/64", 26, "not an IPv4 network in canonical form")]
    [InlineData("198.19.0.0/24", 31, "block_size 31 must be between 16 and 30")]
    [InlineData("198.19.0.0/24", 20, "block_size /20 is larger than the pool 198.19.0.0/24")]
    public void A_wrong_pool_is_refused_with_the_reason(string cidr, int blockSize, string problem) =>
        Assert.Contains(Pool(cidr, blockSize).Validate(), p => p.Contains(problem, StringComparison.Ordinal));

    [Fact]
    public void Blocks_outside_the_pool_or_given_twice_are_refused()
    {
        var pool = Pool() with { Blocks = StringMap.Of(("h1", "198.19.1.0/26"), ("h2", "198.19.0.0/26"), ("h3", "198.19.0.0/26")) };
        var problems = pool.Validate();
        Assert.Contains(problems,
            p => p.Contains("block \"198.19.1.0/26\" of node h1 is not a /26 inside 198.19.0.0/24", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("block 198.19.0.0/26 is given to two nodes", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => IpBlocks.BlockFor(Pool(), "Not_A_Label"));
    }
}
