using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Scenario.Tests;

/// <summary>
/// <c>./eru dev --hosts 3 --etcd-members 3 --acme</c> for a test class (<see cref="EruDev"/>): the scenario then only uses what a user
/// has: the printed addresses, the <c>eru</c> CLI, dig, HTTP, ssh and docker.
/// </summary>
public class DevCluster : IAsyncLifetime
{
    private EruDev? _dev;

    /// <summary>How many simulated hosts, and what else eru dev is asked for.</summary>
    protected virtual string[] ClusterArgs => ["--hosts", "3", "--etcd-members", "3", "--acme"];

    public EruDev Dev => _dev ?? throw new InvalidOperationException("the dev cluster has not started");

    public async Task InitializeAsync() => _dev = await EruDev.StartAsync(Repo.Root, ClusterArgs);

    public async Task DisposeAsync()
    {
        if (_dev is not null) await _dev.DisposeAsync();
    }
}
