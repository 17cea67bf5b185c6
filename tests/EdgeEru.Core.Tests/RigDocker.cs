using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry.Model;

namespace EdgeEru.Core.Tests;

/// <summary>What Docker itself holds on a rig's hosts, to compare with the registry.</summary>
internal static class RigDocker
{
    /// <summary>Every EdgeEru container on every host of <paramref name="rig"/>.</summary>
    public static async Task<List<ContainerState>> ContainersAsync(DockerRig rig)
    {
        var all = new List<ContainerState>();
        foreach (var h in rig.Hosts)
        {
            using var engine = new DockerEngine(new DockerEndpoint { Address = h.Endpoint });
            all.AddRange(await engine.ListEdgeEruAsync());
        }
        return all;
    }
}
