using EdgeEru.Dev;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>The simulated Docker hosts Core, the agent and the SSH gateway are tested on: real dockerd in network namespaces.</summary>
[Collection(DockerRigCollection.Name)]
public class DockerRigTests
{
    [Fact]
    public async Task Containers_on_two_hosts_serve_the_root_namespace_and_each_other()
    {
        await using var rig = await DockerRig.StartAsync(hosts: 2);
        var (h1, h2) = (rig.Hosts[0], rig.Hosts[1]);
        var (a1, a2) = (h1.ContainerAddress(10), h2.ContainerAddress(10));
        await h1.DockerAsync(["run", "-d", "--name", "web1", "--network", DockerRig.Network, "--ip", a1, DockerRig.Image,
            "sh", "-c", "mkdir -p /www; echo one > /www/index.html; exec httpd -f -p 80 -h /www"]);
        await h2.DockerAsync(["run", "-d", "--name", "web2", "--network", DockerRig.Network, "--ip", a2, DockerRig.Image,
            "sh", "-c", "mkdir -p /www; echo two > /www/index.html; exec httpd -f -p 80 -h /www"]);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        Assert.Equal("one\n", await Retry(() => http.GetStringAsync(new Uri($"http://{a1}/"))));
        Assert.Equal("two\n", await Retry(() => http.GetStringAsync(new Uri($"http://{a2}/"))));
        // Across hosts: a container on h1 fetches from the one on h2.
        Assert.Equal("two\n", await h1.DockerAsync(["exec", "web1", "wget", "-q", "-O", "-", $"http://{a2}/"]));
    }

    private static async Task<string> Retry(Func<Task<string>> get)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await get();
            }
            // httpd starting, or a slow first ARP exchange
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && attempt < 50)
            {
                await Task.Delay(100);
            }
        }
    }
}
