using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>A fixed IPv6 address beside the IPv4 one: <c>--network NET=IPV4,IPV6</c>, checked before Docker is asked.</summary>
public class FixedIPv6Tests
{
    private static DeploySpec Spec(string network, int count = 1) => new()
    {
        App = "shop", Entrypoint = "web", Image = "busybox", Pod = "dev", Count = count,
        Networks = new Dictionary<string, string> { ["eru-mv"] = network },
    };

    [Fact]
    public void A_network_value_carries_both_families_and_either_may_be_left_to_the_driver()
    {
        var both = Spec("198.18.16.5,fd00:e0::5");
        Assert.Empty(both.Problems());
        Assert.Equal("198.18.16.5", both.Networks4()["eru-mv"]);
        Assert.Equal("fd00:e0::5", both.Networks6()["eru-mv"]);
        var v6 = Spec(",fd00:e0::5");
        Assert.Equal("", v6.Networks4()["eru-mv"]);
        Assert.Equal("fd00:e0::5", v6.Networks6()["eru-mv"]);
        Assert.Empty(Spec("198.18.16.5").Networks6());
        Assert.Empty(Spec("", count: 3).Problems());
    }

    [Theory]
    [InlineData("198.18.16.5,198.18.16.6", "\"198.18.16.6\" is not an IPv6 address")]
    [InlineData(",fd00::zz", "\"fd00::zz\" is not an IPv6 address")]
    [InlineData(",fd00::1,fd00::2", "is not an IPv6 address")]
    public void A_value_that_is_not_IPv4_then_IPv6_is_refused_with_the_network_named(string value, string expected)
    {
        var problem = Assert.Single(Spec(value).Problems());
        Assert.StartsWith("network eru-mv: ", problem);
        Assert.Contains(expected, problem);
    }

    [Fact]
    public void A_fixed_IPv6_address_fits_one_instance()
    {
        Assert.Contains(Spec(",fd00:e0::5", count: 2).Problems(), p => p.Contains("fits one instance", StringComparison.Ordinal));
    }

    [Fact]
    public void An_IPv6_address_outside_the_networks_subnets_is_named_with_them()
    {
        string?[] subnets = ["198.18.0.0/15", "fd00:e0::/64"];
        Assert.Null(DockerEngine.IPv6Problem("eru-mv", "fd00:e0::5", subnets));
        Assert.Equal("fixed IPv6 address fd00:e1::5 is outside network eru-mv's IPv6 subnet(s) fd00:e0::/64",
            DockerEngine.IPv6Problem("eru-mv", "fd00:e1::5", subnets));
        Assert.Contains("network eru-mv has no IPv6 subnet", DockerEngine.IPv6Problem("eru-mv", "fd00:e0::5", ["198.18.0.0/15", null]));
        Assert.Contains("is not an IPv6 address", DockerEngine.IPv6Problem("eru-mv", "198.18.0.5", subnets));
    }
}
