using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

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

    /// <summary>Runs a scenario; when it fails, the test's output gets the tail of what <c>./eru dev</c> printed.</summary>
    public async Task RunAsync(ITestOutputHelper output, Func<Task> scenario)
    {
        try
        {
            await scenario();
        }
        catch
        {
            output.WriteLine("./eru dev output (tail):\n" + Dev.Output);
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (_dev is not null) await _dev.DisposeAsync();
    }
}
