using System.Net;
using System.Net.Sockets;
using EdgeEru.Dev;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>The port allocator every fixture uses: a port it hands out must still be free when the caller binds it.</summary>
public class PortsTests
{
    [Fact]
    public void Ports_are_outside_the_ephemeral_range_never_repeated_and_bindable()
    {
        var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range")
            .Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        var ports = Enumerable.Range(0, 200).Select(_ => Ports.FreeTcp()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, p => Assert.True(p < range[0] || p > range[1], $"{p} is in the ephemeral range {range[0]}-{range[1]}"));
        // Outgoing connections take their local port from the ephemeral range, so they cannot take ours.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var clients = Enumerable.Range(0, 50).Select(_ => new TcpClient()).ToList();
        foreach (var c in clients) c.Connect((IPEndPoint)listener.LocalEndpoint);
        Assert.All(clients, c => Assert.DoesNotContain(((IPEndPoint)c.Client.LocalEndPoint!).Port, ports));
        foreach (var c in clients) c.Dispose();
        foreach (var p in ports.Take(20))
        {
            using var l = new TcpListener(IPAddress.Parse("127.0.0.7"), p);
            l.Start();
        }
    }
}
