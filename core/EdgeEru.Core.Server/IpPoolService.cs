using EdgeEru.Core.Deploy;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Server;

/// <summary>
/// Records the routed networks' pools of Core's configuration (<c>Core:IpPools:{network}:Cidr</c> and <c>BlockSize</c>)
/// in the registry when Core starts; a pool recorded with another range stops the start (docs/deploy.md).
/// </summary>
public sealed class IpPoolService(Deployer deployer, IReadOnlyList<IpPool> pools, ILogger<IpPoolService> log) : IHostedService
{
    /// <summary>The pools a configuration asks for, each checked; a wrong one is refused at start, naming the setting.</summary>
    public static IReadOnlyList<IpPool> FromConfiguration(IConfiguration config)
    {
        var pools = new List<IpPool>();
        foreach (var section in config.GetSection("Core:IpPools").GetChildren())
        {
            var setting = $"Core:IpPools:{section.Key}";
            var blockSize = section["BlockSize"] ?? "26";
            if (!int.TryParse(blockSize, out var size))
                throw new ArgumentException($"{setting}:BlockSize: \"{blockSize}\" is not a prefix length");
            var pool = new IpPool { Network = section.Key, Cidr = section["Cidr"] ?? "", BlockSize = size };
            var problems = pool.Validate();
            if (problems.Count > 0) throw new ArgumentException($"{setting}: {string.Join("; ", problems)}");
            pools.Add(pool);
        }
        return pools;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var pool in pools)
        {
            await deployer.RecordPoolAsync(pool, cancellationToken);
            log.LogInformation("routed network {Network}: ip pool {Cidr} in /{BlockSize} blocks", pool.Network, pool.Cidr, pool.BlockSize);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
