using System.Buffers.Binary;
using System.Net;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Scheduling;

/// <summary>
/// Address management of routed networks, as Calico's IPAM does it: a pool is cut into blocks, a node gets the
/// lowest free block and keeps it, and a container gets the lowest free address of its node's block. Pure: the
/// callers read and write the pool and the workload records.
/// </summary>
public static class IpBlocks
{
    /// <summary>The block <paramref name="node"/> holds, else the pool with the lowest free block given to it.</summary>
    public static (IpPool Pool, string Block) BlockFor(IpPool pool, string node)
    {
        if (!Names.IsLabel(node)) throw new ArgumentException($"node \"{node}\" must be a DNS label", nameof(node));
        if (pool.Blocks.TryGetValue(node, out var held)) return (pool, held);
        var net = Parse(pool);
        var taken = pool.Blocks.Values.ToHashSet(StringComparer.Ordinal);
        var blocks = 1L << (pool.BlockSize - net.PrefixLength);
        var size = 1L << (32 - pool.BlockSize);
        var start = ToNumber(net.BaseAddress);
        // The lowest free block is among the first taken.Count + 1, so a large pool costs no more than a small one.
        for (long i = 0; i < Math.Min(blocks, taken.Count + 1L); i++)
        {
            var block = $"{ToAddress(start + i * size)}/{pool.BlockSize}";
            if (!taken.Contains(block)) return (pool with { Blocks = StringMap.From([.. pool.Blocks, new(node, block)]) }, block);
        }
        throw new IpPoolExhaustedException(
            $"ip pool {pool.Network} ({pool.Cidr}) has no free /{pool.BlockSize} block for node {node}: all {blocks} are taken");
    }

    /// <summary>The pool without <paramref name="node"/>'s block (a removed node's block is free again).</summary>
    public static IpPool Release(IpPool pool, string node) =>
        pool.Blocks.ContainsKey(node) ? pool with { Blocks = StringMap.From(pool.Blocks.Where(b => b.Key != node)) } : pool;

    /// <summary>The block's gateway: its first address after the network address, held by the node's bridge.</summary>
    public static string Gateway(string block) => ToAddress(ToNumber(ParseBlock(block).BaseAddress) + 1).ToString();

    /// <summary>Whether <paramref name="address"/> is one a container in <paramref name="block"/> may have.</summary>
    public static bool IsContainerAddress(string block, string address)
    {
        var b = ParseBlock(block);
        if (!IPAddress.TryParse(address, out var ip) || !b.Contains(ip)) return false;
        var offset = ToNumber(ip) - ToNumber(b.BaseAddress);
        return offset >= 2 && offset < (1L << (32 - b.PrefixLength)) - 1;
    }

    /// <summary>
    /// The lowest address of <paramref name="block"/> that is not the network address, the gateway, the broadcast
    /// address or one of <paramref name="used"/> (the addresses recorded for the node's workloads on the network).
    /// </summary>
    public static string PickAddress(IpPool pool, string node, string block, IReadOnlySet<string> used)
    {
        var b = ParseBlock(block);
        var start = ToNumber(b.BaseAddress);
        var last = start + (1L << (32 - b.PrefixLength)) - 1;
        for (var n = start + 2; n < last; n++)
        {
            var address = ToAddress(n).ToString();
            if (!used.Contains(address)) return address;
        }
        throw new IpPoolExhaustedException(
            $"node {node}'s block {block} of ip pool {pool.Network} has no free address: all {last - start - 2} are in use");
    }

    private static IPNetwork Parse(IpPool pool) =>
        IpPool.ParseIPv4(pool.Cidr) ?? throw new ArgumentException($"ip pool {pool.Network}: \"{pool.Cidr}\" is not an IPv4 CIDR");

    private static IPNetwork ParseBlock(string block) =>
        IpPool.ParseIPv4(block) ?? throw new ArgumentException($"block \"{block}\" is not an IPv4 CIDR", nameof(block));

    private static long ToNumber(IPAddress ip) => BinaryPrimitives.ReadUInt32BigEndian(ip.GetAddressBytes());

    private static IPAddress ToAddress(long n)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)n);
        return new IPAddress(bytes);
    }
}

/// <summary>A pool with no free block for a node, or a node's block with no free address.</summary>
public sealed class IpPoolExhaustedException(string message) : InvalidOperationException(message);
