using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>Rule graphs are validated before they are stored; every problem names its node.</summary>
public class LbDomainTests
{
    private static string Problems(LbDomain d) => string.Join("\n", d.Validate());

    private static LbDomain With(string node, LbNode value)
    {
        var d = Samples.LbDomain();
        var nodes = new Dictionary<string, LbNode>(d.Nodes) { [node] = value };
        return d with { Nodes = nodes };
    }

    [Fact]
    public void The_dev_canary_graph_is_valid() => Assert.Empty(Samples.LbDomain().Validate());

    [Fact]
    public void Missing_nodes_and_edges_are_named()
    {
        Assert.Contains("init node \"nope\" does not exist", Problems(Samples.LbDomain() with { Init = "nope" }), StringComparison.Ordinal);
        var p = Problems(With("split", new LbNode { Type = "percent", Key = "ip", Percent = 10, Succ = "v3" }));
        Assert.Contains("node \"split\": succ \"v3\" does not exist", p, StringComparison.Ordinal);
        Assert.Contains("node \"split\": a percent filter needs a \"fail\" edge", p, StringComparison.Ordinal);
        Assert.Contains("node \"v1\": a backend node ends the walk and has no edges",
            Problems(With("v1", Samples.LbDomain().Nodes["v1"] with { Succ = "v2" })), StringComparison.Ordinal);
    }

    [Fact]
    public void Header_edits_and_answers_that_would_break_an_HTTP_head_are_refused()
    {
        var v1 = Samples.LbDomain().Nodes["v1"];
        var p = Problems(With("v1", v1 with
        {
            Options = new LbBackendOptions
            {
                SetResponseHeaders = new() { ["X-Ok"] = "a\r\nSet-Cookie: stolen=1" },
                SetRequestHeaders = new() { ["Bad Name"] = "x" },
                RemoveRequestHeaders = ["X:y"],
            },
        }));
        Assert.Contains("node \"v1\": set_response_headers: the value of X-Ok holds a control character", p, StringComparison.Ordinal);
        Assert.Contains("set_request_headers: \"Bad Name\" is not a header name", p, StringComparison.Ordinal);
        Assert.Contains("remove_request_headers: \"X:y\" is not a header name", p, StringComparison.Ordinal);
        Assert.Contains("respond status 204 has no body",
            Problems(With("r", new LbNode { Type = "respond", Status = 204, Body = "x" })), StringComparison.Ordinal);
        Assert.Contains("redirect location holds a control character",
            Problems(With("r", new LbNode { Type = "redirect", Status = 302, Location = "https://x/\nLocation: evil" })),
            StringComparison.Ordinal);
    }

    [Fact]
    public void Cycles_are_refused()
    {
        var p = Problems(With("split", new LbNode { Type = "percent", Key = "ip", Percent = 10, Succ = "canary-header", Fail = "v1" }));
        Assert.Contains("closes a cycle", p, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_regexes_cidrs_and_values_are_refused_with_the_node_named()
    {
        Assert.Contains("node \"canary-header\": regex \"([\" is invalid",
            Problems(With("canary-header",
                new LbNode { Type = "header", Name = "X", Match = "regex", Value = "([", Succ = "v1", Fail = "v2" })),
            StringComparison.Ordinal);
        Assert.Contains("node \"canary-header\": \"10.0.0.0/33\" is not a CIDR network",
            Problems(With("canary-header", new LbNode { Type = "ip", Cidrs = ["10.0.0.0/33"], Succ = "v1", Fail = "v2" })),
            StringComparison.Ordinal);
        Assert.Contains("node \"split\": percent 120 is outside 0-100",
            Problems(With("split", new LbNode { Type = "percent", Key = "ip", Percent = 120, Succ = "v1", Fail = "v2" })),
            StringComparison.Ordinal);
        Assert.Contains("node \"split\": percent key \"cookie:\" must be",
            Problems(With("split", new LbNode { Type = "percent", Key = "cookie:", Percent = 5, Succ = "v1", Fail = "v2" })),
            StringComparison.Ordinal);
        Assert.Contains("node \"canary-header\": type \"geo\" must be one of",
            Problems(With("canary-header", new LbNode { Type = "geo", Succ = "v1", Fail = "v2" })), StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_selectors_are_refused()
    {
        Assert.Contains("node \"v1\": backend needs select", Problems(With("v1", new LbNode { Type = "backend" })),
            StringComparison.Ordinal);
        Assert.Contains("node \"v1\": app \"\" must be a DNS label",
            Problems(With("v1", new LbNode { Type = "backend", Select = new LbSelector { App = "", Entrypoint = "web", Port = "http" } })),
            StringComparison.Ordinal);
        Assert.Contains("node \"v1\": group weight 0 must be positive",
            Problems(With("v1", new LbNode
            {
                Type = "backend", Select = new LbSelector { App = "a", Entrypoint = "web", Port = "http" }, Groups = [new LbGroup()],
            })),
            StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_graph_never_encodes()
    {
        var ex = Assert.Throws<RegistryValueException>(() => Kinds.LbDomains.Encode(Samples.LbDomain() with { Init = "nope" }));
        Assert.Contains("lb/domains/hello.eru.local", ex.Message, StringComparison.Ordinal);
    }
}
