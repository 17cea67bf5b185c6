using EdgeEru.Core.Scheduling;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Deploy;

/// <summary>
/// Routed networks (<c>ip-pools/{network}</c>): Core is their IPAM. A node gets a block of the pool on its first
/// container there, the network is made on the node as a host-local bridge on that block, and each container gets
/// a free address of the block; the node's BGP speaker announces the block, so no L2 segment spans the hosts.
/// </summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Records a pool from Core's configuration: made when absent, kept when the same; a recorded pool with another
    /// range or block size is refused (its blocks and addresses are in use), naming both.
    /// </summary>
    public async Task RecordPoolAsync(IpPool wanted, CancellationToken ct = default)
    {
        var problems = wanted.Validate();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
        if (await store.CreateAsync(Kinds.IpPools, wanted with { Blocks = StringMap.Empty }, ct: ct)) return;
        var recorded = await store.GetAsync(Kinds.IpPools, wanted.Network, ct);
        if (recorded is { Value: var r } && (r.Cidr != wanted.Cidr || r.BlockSize != wanted.BlockSize))
            throw new InvalidOperationException($"ip pool {wanted.Network} is recorded as {r.Cidr} in /{r.BlockSize} blocks "
                + $"({r.Blocks.Count} given to nodes), not {wanted.Cidr} in /{wanted.BlockSize} blocks: a pool in use is not changed");
    }

    /// <summary>
    /// The spec with an address on each routed network of <paramref name="node"/>: the node's block (given on first
    /// use), the network made there, and the lowest address of the block no workload on the node holds (nor Docker, nor
    /// <paramref name="refused"/>: taken by another deploy after the last look). A fixed address (keep-ip) must lie in the
    /// node's block.
    /// </summary>
    private async Task<DeploySpec> RoutedAddressesAsync(IDockerEngine engine, Node node, Prepared prepared,
        IReadOnlyList<Workload> onNode, IReadOnlySet<string> refused, string identity, CancellationToken ct)
    {
        var spec = prepared.Spec;
        Dictionary<string, string>? networks = null;
        foreach (var (network, value) in spec.Networks.Where(n => prepared.Routed.Contains(n.Key)))
        {
            var (pool, block) = await BlockAsync(network, node.Name, ct);
            var fixed4 = DeploySpec.SplitAddresses(value).V4;
            var held = await engine.EnsureRoutedNetworkAsync(network, block, IpBlocks.Gateway(block), new Dictionary<string, string>
            {
                [DockerEngine.NodeLabel] = node.Name, [DockerEngine.RegistryLabel] = identity,
            }, ct);
            if (fixed4.Length > 0)
            {
                if (!IpBlocks.IsContainerAddress(block, fixed4))
                    throw new InvalidOperationException(
                        $"network {network}: {fixed4} is not a container address of node {node.Name}'s block {block}");
                continue;
            }
            // Recorded addresses (stopped containers' too), and those Docker holds for deploys not recorded yet.
            var used = onNode.Select(w => w.Networks.TryGetValue(network, out var a) ? a : "").Where(a => a.Length > 0)
                .Concat(held).Concat(refused).ToHashSet(StringComparer.Ordinal);
            networks ??= spec.Networks.ToDictionary();
            networks[network] = IpBlocks.PickAddress(pool, node.Name, block, used);
        }
        return networks is null ? spec : spec with { Networks = networks };
    }

    /// <summary>The addresses Core picked (the spec asked for none on those networks).</summary>
    private static List<string> PickedAddresses(DeploySpec asked, DeploySpec placed) =>
        [.. placed.Networks4().Where(n => n.Value.Length > 0 && asked.Networks4().GetValueOrDefault(n.Key) is "").Select(n => n.Value)];

    /// <summary>Docker's answer when a container's fixed address is held by another one on the network.</summary>
    private static bool IsAddressTaken(global::Docker.DotNet.DockerApiException ex) =>
        ex.ResponseBody.Contains("Address already in use", StringComparison.OrdinalIgnoreCase);

    /// <summary>The node's block in the pool; the first time, the lowest free one, recorded under a guard on the pool.</summary>
    private Task<(IpPool Pool, string Block)> BlockAsync(string network, string node, CancellationToken ct) =>
        store.TransactAsync(async (tx, c) =>
        {
            // Guarded on the node too: a node removed meanwhile gets no block (its removal frees its blocks).
            if (await tx.GetAsync(Kinds.Nodes, node, c) is null) throw new InvalidOperationException($"node {node} is gone");
            var pool = await tx.GetAsync(Kinds.IpPools, network, c) ?? throw new InvalidOperationException($"ip pool {network} is gone");
            var (next, block) = IpBlocks.BlockFor(pool.Value, node);
            if (!ReferenceEquals(next, pool.Value)) tx.Put(Kinds.IpPools, next);
            return (next, block);
        }, ct: ct);
}
