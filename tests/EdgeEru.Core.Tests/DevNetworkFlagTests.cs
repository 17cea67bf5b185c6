using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary><c>eru dev --network</c>: what it accepts, and each combination it refuses, with the reason (nothing is started).</summary>
public sealed class DevNetworkFlagTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("bogus", "", "bogus")]
    [InlineData("routed", "--docker-host unix:///run/none.sock", "--network routed runs on simulated hosts, not --docker-host engines")]
    [InlineData("routed", "--hosts 0", "--network routed needs --hosts 1 or more")]
    [InlineData("routed", "--self-hosted", "--network routed does not run a --self-hosted edge yet")]
    public async Task A_network_that_cannot_run_is_refused_with_the_reason(string network, string more, string reason)
    {
        var state = Directory.CreateTempSubdirectory("eru-dev-flags-").FullName;
        try
        {
            var (code, text) = await EruCli.RunAsync(output,
                ["dev", "--network", network, .. more.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--state-dir", state]);
            Assert.NotEqual(0, code);
            Assert.Contains(reason, text, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(state, recursive: true);
        }
    }
}
