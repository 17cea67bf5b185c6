using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary><c>eru dev --datacenter</c> and <c>--follow-dc</c>: bad values are refused before anything starts, naming the flag.</summary>
public class DevDatacenterFlagTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("--datacenter", "DC_1", "--datacenter: \"DC_1\" is not a DNS label")]
    [InlineData("--follow-dc", "dc2", "--follow-dc dc2: expected NAME=http://HOST:PORT[/PREFIX]")]
    [InlineData("--follow-dc", "Dc2=http://127.0.0.1:2379", "\"Dc2\" is not a DNS label")]
    [InlineData("--follow-dc", "dc2=etcd:2379", "\"etcd:2379\" is not an http(s) URL of an etcd")]
    public async Task A_bad_datacenter_flag_is_refused_with_the_reason(string flag, string value, string expected)
    {
        var (code, text) = await EruCli.RunAsync(output, "dev", flag, value, "--hosts", "0");
        Assert.NotEqual(0, code);
        Assert.Contains(expected, text, StringComparison.Ordinal);
    }
}
