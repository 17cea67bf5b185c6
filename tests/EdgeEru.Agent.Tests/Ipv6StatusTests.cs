using EdgeEru.Core.Deploy;
using EdgeEru.Dev;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Agent.Tests;

/// <summary>IPv6 end to end on a real dockerd: Core asks for a fixed IPv6 address, the agent reports what the container has.</summary>
[Collection(RigCollection.Name)]
public sealed class Ipv6StatusTests(RigFixture rig, EtcdFixture etcd, ITestOutputHelper output)
{
    [Fact]
    public async Task The_status_carries_the_fixed_IPv6_address_Core_asked_Docker_for_beside_the_IPv4_one()
    {
        // A dual-stack network of its own on the host, beside the rig's macvlan (the way in for health checks).
        var prefix = $"fd00:e0:{Random.Shared.Next(0x1000, 0xffff):x}:1";
        var net = "eru-v6-" + Guid.NewGuid().ToString("N")[..6];
        await rig.Host.DockerAsync(["network", "create", "-d", "bridge", "--ipv6", "--subnet", prefix + "::/64", net]);
        try
        {
            await using var scene = new AgentScene(rig, etcd.Url, output);
            await scene.Store.PutAsync(Kinds.Pods, new Pod { Name = "p" });
            await scene.Store.PutAsync(Kinds.Nodes, rig.Host.AsNode("p", cpuCores: 2, memoryBytes: 2L << 30) with
            {
                Name = scene.Node, Networks = [DockerRig.Network, net],
            });
            await scene.StartAgentAsync();
            await Eventually.True(() => scene.Store.GetAsync(Kinds.NodeStatus, scene.Node).Result is not null, TimeSpan.FromSeconds(20),
                "the agent's heartbeat");
            var deployer = new Deployer(scene.Store, e => new DockerEngine(e), scene.Logs.CreateLogger<Deployer>());
            DeploySpec Spec(string address6) => new()
            {
                App = "dual", Entrypoint = "web", Image = DockerRig.Image, Pod = "p", Nodes = [scene.Node], Command = AgentScene.Httpd,
                Ports = [new PublishedPort { Name = "http", Port = 80 }], MemoryRequest = 16L << 20, MemoryLimit = 32L << 20,
                Networks = new Dictionary<string, string> { [DockerRig.Network] = "", [net] = "," + address6 },
            };

            var result = await deployer.DeployAsync(Spec(prefix + "::42"));
            Assert.True(result.Ok, result.Error ?? string.Join("; ", result.Instances.Select(i => i.Error)));
            var id = result.Instances[0].WorkloadId!;
            var record = (await scene.Store.GetAsync(Kinds.Workloads, id))!.Value;
            Assert.Equal(prefix + "::42", record.Networks6![net]);
            await Eventually.True(async () => (await scene.StatusAsync(id))?.Addresses6?.GetValueOrDefault(net) == prefix + "::42",
                TimeSpan.FromSeconds(20), "the status's IPv6 address");
            var status = (await scene.StatusAsync(id))!;
            Assert.True(status.Healthy);
            // The rig's own network is dual-stack too: there the engine chose the IPv6 address, out of the rig's ULA prefix.
            Assert.StartsWith("fd65:7275:", status.Addresses6![DockerRig.Network], StringComparison.Ordinal);
            Assert.True(System.Net.IPAddress.Parse(status.Addresses[DockerRig.Network]).AddressFamily
                == System.Net.Sockets.AddressFamily.InterNetwork);

            // An address outside the network's subnet: refused before Docker is asked, with both named.
            var outside = await deployer.DeployAsync(Spec("fd00:e1::42"));
            Assert.False(outside.Ok);
            var error = outside.Error ?? string.Join("; ", outside.Instances.Select(i => i.Error));
            Assert.Contains($"fixed IPv6 address fd00:e1::42 is outside network {net}'s IPv6 subnet(s) {prefix}::/64", error);
        }
        finally
        {
            await rig.Host.DockerAsync(["network", "rm", net]);
        }
    }
}
