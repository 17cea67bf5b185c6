using Docker.DotNet;
using Docker.DotNet.Models;

namespace EdgeEru.Docker;

/// <summary>Networks Core makes on a node: a routed network's host-local bridge on the node's block.</summary>
public sealed partial class DockerEngine
{
    /// <summary>
    /// Makes the host-local bridge network <paramref name="name"/> on <paramref name="subnet"/> with the node side at
    /// <paramref name="gateway"/>, or checks that the one there has that subnet (one on another subnet with no
    /// container, left from a block the node no longer holds, is made again). No masquerade: containers keep their
    /// own addresses on the way out, and the host routes them (its block is announced by BGP). Returns the IPv4
    /// addresses the network's containers hold now, which the registry may not know yet (a deploy in flight).
    /// </summary>
    public async Task<IReadOnlySet<string>> EnsureRoutedNetworkAsync(
        string name, string subnet, string gateway, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                var existing = await _client.Networks.InspectNetworkAsync(name, ct);
                var subnets = existing.IPAM?.Config?.Select(c => c.Subnet).ToList() ?? [];
                var endpoints = existing.Containers ?? new Dictionary<string, EndpointResource>();
                if (existing.Driver == "bridge" && subnets.Contains(subnet))
                    return endpoints.Values.Select(e => e.IPv4Address?.Split('/')[0] ?? "").Where(a => a.Length > 0)
                        .ToHashSet(StringComparer.Ordinal);
                if (endpoints.Count > 0)
                    throw new InvalidOperationException($"Docker network {name} is a {existing.Driver} network on "
                        + $"{(subnets.Count == 0 ? "no subnet" : string.Join(", ", subnets))} with {endpoints.Count} container(s), "
                        + $"not a bridge on this node's block {subnet}");
                await _client.Networks.DeleteNetworkAsync(existing.ID, ct);
            }
            catch (DockerNetworkNotFoundException)
            {
            }
            try
            {
                await _client.Networks.CreateNetworkAsync(new NetworksCreateParameters
                {
                    Name = name, Driver = "bridge", CheckDuplicate = true, Labels = labels.ToDictionary(),
                    IPAM = new IPAM { Driver = "default", Config = [new IPAMConfig { Subnet = subnet, Gateway = gateway }] },
                    Options = new Dictionary<string, string> { ["com.docker.network.bridge.enable_ip_masquerade"] = "false" },
                }, ct);
                return new HashSet<string>(StringComparer.Ordinal);
            }
            catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.Conflict)
            {
                // Made meanwhile by another deploy to this node: check it once more.
            }
        }
        throw new InvalidOperationException($"Docker network {name} could not be made or found on {subnet}");
    }
}
