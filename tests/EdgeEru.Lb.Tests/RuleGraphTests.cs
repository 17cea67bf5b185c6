using System.Net;
using EdgeEru.Lb.Routing;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>The rule graph as pure logic: requests built by hand, walks checked node by node.</summary>
public class RuleGraphTests
{
    private sealed class Request : IRequestFacts
    {
        public string Method { get; init; } = "GET";
        public string Path { get; init; } = "/";
        public Dictionary<string, string> Headers { get; init; } = new(StringComparer.OrdinalIgnoreCase);
        public Dictionary<string, string> QueryValues { get; init; } = [];
        public Dictionary<string, string> Cookies { get; init; } = [];
        public IPAddress Peer { get; init; } = IPAddress.Parse("192.0.2.10");

        public string? Header(string name) => Headers.GetValueOrDefault(name);
        public string? Query(string name) => QueryValues.GetValueOrDefault(name);
        public string? Cookie(string name) => Cookies.GetValueOrDefault(name);
        public IPAddress ClientAddress(IReadOnlyList<IPNetwork> trustedProxies) => Peer;
    }

    private static LbNode Backend(string tag) =>
        new() { Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = [tag] } };

    private static RuleGraph Graph(LbNode filter) => new(new LbDomain
    {
        Name = "t.example",
        Init = "f",
        Nodes = new() { ["f"] = filter with { Succ = "yes", Fail = "no" }, ["yes"] = Backend("yes"), ["no"] = Backend("no") },
    });

    private static string Walk(RuleGraph g, Request r) => g.Evaluate(r).Terminal.Id;

    [Fact]
    public void The_canary_graph_sends_the_header_and_a_sticky_tenth_of_users_to_v2()
    {
        var g = new RuleGraph(Samples.LbDomain());
        Assert.Equal("v2", Walk(g, new Request { Headers = { ["X-Canary"] = "1" } }));
        var other = new List<(string Node, bool? Matched)>();
        g.Evaluate(new Request { Headers = { ["X-Canary"] = "0" } }, other);
        Assert.Equal(("canary-header", (bool?)false), other[0]);
        Assert.Equal("split", other[1].Node);
        var toV2 = Enumerable.Range(0, 2000).Count(i => Walk(g, new Request { Cookies = { ["uid"] = $"user-{i}" } }) == "v2");
        Assert.InRange(toV2, 150, 250); // ~10%
        for (var i = 0; i < 50; i++) // sticky: the same user, the same side, every time
        {
            var r = new Request { Cookies = { ["uid"] = $"user-{i}" } };
            Assert.Equal(Walk(g, r), Walk(g, r));
        }
        var trace = new List<(string Node, bool? Matched)>();
        g.Evaluate(new Request { Headers = { ["X-Canary"] = "1" } }, trace);
        Assert.Equal([("canary-header", (bool?)true), ("v2", null)], trace);
    }

    [Fact]
    public void Raising_the_percentage_only_moves_users_toward_succ()
    {
        var users = Enumerable.Range(0, 500).Select(i => new Request { Cookies = { ["uid"] = $"u{i}" } }).ToList();
        HashSet<int> Succ(int percent)
        {
            var g = Graph(new LbNode { Type = "percent", Key = "cookie:uid", Percent = percent });
            return users.Select((u, i) => (u, i)).Where(x => Walk(g, x.u) == "yes").Select(x => x.i).ToHashSet();
        }
        var ten = Succ(10);
        var fifty = Succ(50);
        Assert.Subset(fifty, ten);
        Assert.Empty(Succ(0));
        Assert.Equal(500, Succ(100).Count);
    }

    [Fact]
    public void Without_the_key_the_client_address_text_picks_the_side()
    {
        // The address is hashed as the text it prints as (formatted without a string per request), so a user
        // without the cookie lands where a cookie holding that text would: the buckets are the same as ever.
        var g = Graph(new LbNode { Type = "percent", Key = "cookie:uid", Percent = 50 });
        var addresses = Enumerable.Range(0, 200).Select(i => new IPAddress([192, 0, 2, (byte)i]))
            .Concat(Enumerable.Range(0, 200).Select(i => IPAddress.Parse($"2001:db8::{i:x}"))).ToList();
        foreach (var a in addresses)
            Assert.Equal(Walk(g, new Request { Cookies = { ["uid"] = a.ToString() } }), Walk(g, new Request { Peer = a }));
        var yes = addresses.Count(a => Walk(g, new Request { Peer = a }) == "yes");
        Assert.InRange(yes, 120, 280); // both sides get addresses
    }

    [Theory]
    [InlineData("prefix", "/api", "/api/users", true)]
    [InlineData("prefix", "/api", "/web", false)]
    [InlineData("exact", "/healthz", "/healthz", true)]
    [InlineData("exact", "/healthz", "/healthz/x", false)]
    [InlineData("regex", "^/v[0-9]+/", "/v2/items", true)]
    [InlineData("regex", "^/v[0-9]+/", "/items", false)]
    public void Path_filters(string match, string value, string path, bool expected) =>
        Assert.Equal(expected ? "yes" : "no",
            Walk(Graph(new LbNode { Type = "path", Match = match, Value = value }), new Request { Path = path }));

    [Fact]
    public void Path_rewrites_and_prefix_stripping_are_carried_to_the_backend()
    {
        var strip = Graph(new LbNode { Type = "path", Match = "prefix", Value = "/api", StripPrefix = true });
        Assert.Equal("/users", strip.Evaluate(new Request { Path = "/api/users" }).RewrittenPath);
        var rewrite = Graph(new LbNode { Type = "path", Match = "regex", Value = "^/v(?<n>[0-9]+)/(.*)$", Rewrite = "/version/${n}/$1" });
        Assert.Equal("/version/2/items", rewrite.Evaluate(new Request { Path = "/v2/items" }).RewrittenPath);
    }

    [Theory]
    [InlineData("exact", "beta", "beta", false, true)]
    [InlineData("exact", "beta", "BETA", false, false)]
    [InlineData("exact", "beta", "BETA", true, true)]
    [InlineData("prefix", "be", "beta", false, true)]
    [InlineData("regex", "^b.t", "beta", false, true)]
    [InlineData("present", null, "anything", false, true)]
    [InlineData("present", null, null, false, false)]
    [InlineData("absent", null, null, false, true)]
    public void Header_query_and_cookie_filters_share_match_kinds(
        string match, string? value, string? actual, bool ignoreCase, bool expected)
    {
        foreach (var type in new[] { "header", "query", "cookie" })
        {
            var g = Graph(new LbNode { Type = type, Name = "flag", Match = match, Value = value, IgnoreCase = ignoreCase });
            var r = new Request();
            if (actual is not null)
            {
                r.Headers["flag"] = actual;
                r.QueryValues["flag"] = actual;
                r.Cookies["flag"] = actual;
            }
            Assert.True((Walk(g, r) == "yes") == expected, $"{type} {match} {value} vs {actual}");
        }
    }

    [Fact]
    public void Method_ua_and_client_ip_filters()
    {
        var method = Graph(new LbNode { Type = "method", Values = ["POST", "PUT"] });
        Assert.Equal("yes", Walk(method, new Request { Method = "PUT" }));
        Assert.Equal("no", Walk(method, new Request { Method = "GET" }));
        var ua = Graph(new LbNode { Type = "ua", Value = "iphone|android" });
        Assert.Equal("yes", Walk(ua, new Request { Headers = { ["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS)" } }));
        Assert.Equal("no", Walk(ua, new Request { Headers = { ["User-Agent"] = "curl/8.0" } }));
        var ip = Graph(new LbNode { Type = "ip", Cidrs = ["10.0.0.0/8", "192.0.2.0/24"] });
        Assert.Equal("yes", Walk(ip, new Request { Peer = IPAddress.Parse("192.0.2.77") }));
        Assert.Equal("no", Walk(ip, new Request { Peer = IPAddress.Parse("198.51.100.1") }));
    }

    [Fact]
    public void A_graph_that_fails_validation_does_not_compile()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RuleGraph(Samples.LbDomain() with { Init = "nowhere" }));
        Assert.Contains("init node \"nowhere\" does not exist", ex.Message, StringComparison.Ordinal);
    }
}
