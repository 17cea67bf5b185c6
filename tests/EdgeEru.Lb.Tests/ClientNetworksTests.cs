using System.Net;
using EdgeEru.Lb.Routing;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>The ip filter's matcher and the trusted X-Forwarded-For walk, both families, as pure logic.</summary>
public class ClientNetworksTests
{
    private static IPNetwork[] Nets(params string[] cidrs) => cidrs.Select(ClientNetworks.Parse).ToArray();

    private static bool In(string client, params string[] cidrs) => ClientNetworks.Contains(Nets(cidrs), IPAddress.Parse(client));

    [Fact]
    public void Ipv6_networks_match_ipv6_clients_only()
    {
        Assert.True(In("2001:db8::7", "2001:db8::/32"));
        Assert.True(In("2001:DB8:0:0::1", "2001:db8::/32")); // any spelling
        Assert.False(In("2001:db9::1", "2001:db8::/32"));
        Assert.True(In("::1", "::1/128"));
        Assert.False(In("127.0.0.1", "::1/128", "::/0")); // a network of the other family never matches
        Assert.False(In("2001:db8::7", "0.0.0.0/0"));
        Assert.True(In("fd00:e0:0:2::17", "203.0.113.0/24", "fd00::/8")); // any of several, mixed
    }

    [Fact]
    public void Ipv4_mapped_clients_and_networks_are_matched_as_ipv4()
    {
        Assert.True(In("::ffff:203.0.113.7", "203.0.113.0/24"));
        Assert.False(In("::ffff:198.51.100.7", "203.0.113.0/24"));
        Assert.True(In("203.0.113.7", "::ffff:203.0.113.0/120")); // the mapped network is the IPv4 /24
        Assert.True(In("::ffff:10.1.2.3", "::ffff:10.0.0.0/104"));
        Assert.Equal(IPNetwork.Parse("10.0.0.0/8"), ClientNetworks.Parse("::ffff:10.0.0.0/104"));
        Assert.Equal(IPAddress.Parse("192.0.2.1"), ClientNetworks.Plain(IPAddress.Parse("::ffff:192.0.2.1")));
        var v6 = IPAddress.Parse("2001:db8::1");
        Assert.Same(v6, ClientNetworks.Plain(v6)); // no copy for a plain address
    }

    private static IPAddress Client(string peer, string? xff, params string[] trusted) =>
        TrustedProxies.Client(IPAddress.Parse(peer), Nets(trusted), xff, static x => x);

    [Fact]
    public void X_forwarded_for_from_a_trusted_ipv6_proxy_names_the_client_in_either_family()
    {
        Assert.Equal(IPAddress.Parse("2001:db8::7"), Client("::1", "2001:db8::7", "::1/128"));
        Assert.Equal(IPAddress.Parse("2001:db8::7"), Client("::1", "2001:db8::7, fd00::5", "::1/128", "fd00::/8"));
        Assert.Equal(IPAddress.Parse("203.0.113.7"), Client("::1", "::ffff:203.0.113.7", "::1/128"));
        Assert.Equal(IPAddress.Parse("198.51.100.1"), Client("::1", "198.51.100.1", "::1/128"));
        Assert.Equal(IPAddress.Parse("::1"), Client("::1", "2001:db8::7", "127.0.0.0/8")); // untrusted proxy: its word is not taken
        // An IPv4 proxy that reached a dual-stack listener is the IPv4 proxy the domain trusts.
        Assert.Equal(IPAddress.Parse("2001:db8::7"), Client("::ffff:127.0.0.1", "2001:db8::7", "127.0.0.0/8"));
        Assert.Equal(IPAddress.Parse("203.0.113.7"), Client("::1", "203.0.113.7, ::ffff:10.0.0.2", "::1/128", "10.0.0.0/8"));
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("any", true)]
    [InlineData("ipv4", true)]
    [InlineData("ipv6", true)]
    [InlineData("IPv6", false)]
    [InlineData("inet6", false)]
    public void A_backend_family_is_ipv4_ipv6_or_any(string? family, bool valid)
    {
        var domain = new LbDomain
        {
            Name = "six.test",
            Init = "b",
            Nodes = new()
            {
                ["b"] = new LbNode
                {
                    Type = "backend",
                    Select = new LbSelector { App = "six", Entrypoint = "web", Port = "http", Family = family },
                    Fallback = new LbSelector { Tags = ["v1"], Family = family },
                },
            },
        };
        var problems = domain.Validate();
        if (valid) Assert.Empty(problems);
        else
            Assert.Equal(
                [
                    $"node \"b\": family \"{family}\" must be ipv4, ipv6 or any",
                    $"node \"b\": fallback: family \"{family}\" must be ipv4, ipv6 or any",
                ],
                problems);
    }
}
