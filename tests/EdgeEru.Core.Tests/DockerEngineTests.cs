using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>Core's Docker driver against a real dockerd in a simulated host.</summary>
[Collection(DockerRigCollection.Name)]
public sealed class DockerEngineTests : IAsyncLifetime
{
    private DockerRig? _rig;

    public async Task InitializeAsync() => _rig = await DockerRig.StartAsync(hosts: 1);

    public async Task DisposeAsync()
    {
        if (_rig is not null) await _rig.DisposeAsync();
    }

    private DockerEngine Engine() => new(new DockerEndpoint { Address = _rig!.Hosts[0].Endpoint });

    [Fact]
    public async Task A_container_gets_its_limits_cores_fixed_address_and_labels()
    {
        using var engine = Engine();
        var (cpus, memory, version) = await engine.InfoAsync();
        Assert.True(cpus >= 1 && memory > 0 && version.Length > 0);

        var id = await engine.CreateAndStartAsync(new ContainerSpec
        {
            Name = "hello_web_3f2a9c",
            Image = DockerRig.Image,
            Command = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www"],
            Labels = new Dictionary<string, string>
            {
                [DockerEngine.AppLabel] = "hello", [DockerEngine.EntrypointLabel] = "web", [DockerEngine.IdentLabel] = "3f2a9c",
            },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = _rig!.Hosts[0].ContainerAddress(77) },
            MemoryLimit = 64L << 20,
            Cpuset = DockerEngine.Cpuset([0]),
        });
        var state = await engine.InspectAsync(id);
        Assert.NotNull(state);
        Assert.True(state.Running);
        Assert.Equal("hello_web_3f2a9c", state.Name);
        Assert.Equal(64L << 20, state.MemoryLimit);
        Assert.Equal("0", state.Cpuset);
        Assert.Equal(_rig!.Hosts[0].ContainerAddress(77), state.Addresses[DockerRig.Network]);
        Assert.Equal("hello", state.Labels[DockerEngine.AppLabel]);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        string? body = null;
        for (var i = 0; i < 50 && body is null; i++)
        {
            try
            {
                body = await http.GetStringAsync(new Uri($"http://{_rig!.Hosts[0].ContainerAddress(77)}/"));
            }
            // not up yet, or the first ARP exchange was slow
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                await Task.Delay(100);
            }
        }
        Assert.Equal(id[..12], body?.Trim());

        Assert.Single(await engine.ListEdgeEruAsync());
        Assert.True(await engine.RemoveAsync(id, TimeSpan.Zero));
        Assert.Null(await engine.InspectAsync(id));
        Assert.False(await engine.RemoveAsync(id, TimeSpan.Zero));
    }

    [Fact]
    public async Task An_unbound_container_gets_a_CFS_quota_and_a_failed_start_leaves_nothing_behind()
    {
        using var engine = Engine();
        var id = await engine.CreateAndStartAsync(new ContainerSpec
        {
            Name = "hello_worker_aaaaaa",
            Image = DockerRig.Image,
            Command = ["sleep", "30"],
            Labels = new Dictionary<string, string> { [DockerEngine.AppLabel] = "hello" },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = "" },
            CpuQuota = 0.5,
        });
        var state = await engine.InspectAsync(id);
        Assert.Equal(50_000, state!.CpuQuota);
        Assert.True(System.Net.IPNetwork.Parse(_rig!.Hosts[0].IpRange)
            .Contains(System.Net.IPAddress.Parse(state.Addresses[DockerRig.Network]))); // from this host's range
        await engine.RemoveAsync(id, TimeSpan.Zero);

        // The same fixed address twice: the second start fails, and its container is removed again.
        var first = await engine.CreateAndStartAsync(new ContainerSpec
        {
            Name = "a_web_111111", Image = DockerRig.Image, Command = ["sleep", "30"],
            Labels = new Dictionary<string, string> { [DockerEngine.AppLabel] = "a" },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = _rig!.Hosts[0].ContainerAddress(88) },
        });
        await Assert.ThrowsAnyAsync<Exception>(() => engine.CreateAndStartAsync(new ContainerSpec
        {
            Name = "a_web_222222", Image = DockerRig.Image, Command = ["sleep", "30"],
            Labels = new Dictionary<string, string> { [DockerEngine.AppLabel] = "a" },
            Networks = new Dictionary<string, string> { [DockerRig.Network] = _rig!.Hosts[0].ContainerAddress(88) },
        }));
        var left = await engine.ListEdgeEruAsync();
        Assert.Equal([first], left.Select(c => c.Id));
        await Assert.ThrowsAnyAsync<Exception>(() =>
            engine.CreateAndStartAsync(new ContainerSpec { Name = "b_web_333333", Image = "no/such:image" }));
    }
}
