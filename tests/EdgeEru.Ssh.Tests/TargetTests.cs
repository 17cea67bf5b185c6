using EdgeEru.Mimiron.Targets;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Ssh.Tests;

public class TargetTests
{
    // shop.web: 3 live (aaa111, bbb222, ccc333 on n1/n2), one not healthy (ddd444); shop.worker: 1 live; blog.web: 1 live on a dead node.
    private static RegistrySnapshot Snapshot()
    {
        var changes = new List<RegistryChange>
        {
            RegistryChange.Put(Kinds.Nodes, Samples.Node("n1")), RegistryChange.Put(Kinds.Nodes, Samples.Node("n2")),
            RegistryChange.Put(Kinds.Nodes, Samples.Node("n3")),
            RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n1"), 7),
            RegistryChange.Put(Kinds.NodeStatus, Samples.NodeStatus("n2"), 7),
        };
        void Add(string id, string app, string ep, string node, bool healthy = true)
        {
            changes.Add(RegistryChange.Put(Kinds.Workloads, Samples.Workload(id, app, ep, node)));
            changes.Add(RegistryChange.Put(Kinds.WorkloadStatus, Samples.Status(id, node, healthy: healthy), 7));
        }
        Add("ccc333x", "shop", "web", "n2");
        Add("aaa111x", "shop", "web", "n1");
        Add("bbb222x", "shop", "web", "n1");
        Add("ddd444x", "shop", "web", "n1", healthy: false);
        Add("eee555x", "shop", "worker", "n2");
        Add("fff666x", "blog", "web", "n3");
        return RegistrySnapshot.Build(changes, 10);
    }

    private static string Resolve(string target)
    {
        var r = TargetResolver.Resolve(Snapshot(), target, out var problem);
        return r is null ? "error: " + problem : $"{r.Workload.Ident}@{r.Node.Name}";
    }

    [Theory]
    [InlineData("bbb222", "bbb222@n1")] // ident
    [InlineData("shop_worker_eee555", "eee555@n2")] // workload name
    [InlineData("web.shop", "aaa111@n1")] // entrypoint.app: the first by ident
    [InlineData("web.shop#3", "ccc333@n2")]
    [InlineData("worker.shop", "eee555@n2")]
    [InlineData("shop", "aaa111@n1")] // app: any of its entrypoints
    [InlineData("shop#4", "eee555@n2")]
    public void Targets_resolve_to_live_instances(string target, string expected) => Assert.Equal(expected, Resolve(target));

    [Theory]
    [InlineData("web.shop", "bbb222@n1 ccc333@n2")] // the gateway chose: the others, in order, if the first cannot take it
    [InlineData("shop", "bbb222@n1 ccc333@n2 eee555@n2")]
    [InlineData("web.shop#2", "")] // the user chose
    [InlineData("bbb222", "")] // one instance named
    public void A_target_the_gateway_chose_carries_the_other_live_instances(string target, string others)
    {
        var r = TargetResolver.Resolve(Snapshot(), target, out _)!;
        Assert.Equal(others, string.Join(' ', r.Others.Select(o => $"{o.Workload.Ident}@{o.Node.Name}")));
    }

    [Theory]
    [InlineData("ddd444", "no live instance matches \"ddd444\"")] // not healthy
    [InlineData("blog", "no live instance matches \"blog\"")] // its node has no heartbeat
    [InlineData("web.shop#4", "has 3 live instances, not 4")]
    [InlineData("web.shop#0", "a number from 1")]
    [InlineData("web.shop#x", "a number from 1")]
    [InlineData("", "no target after ~")]
    [InlineData("nothing", "no live instance matches \"nothing\"")]
    public void Unresolvable_targets_say_why(string target, string expected) => Assert.Contains(expected, Resolve(target));

    [Theory]
    [InlineData("ops~web.shop", "ops", "web.shop")]
    [InlineData("ops", "ops", null)]
    [InlineData("ops~", "ops", "")]
    [InlineData("ops~a~b", "ops", "a~b")]
    public void Login_names_split_at_the_first_tilde(string login, string user, string? target)
    {
        var l = LoginName.Parse(login, out var problem);
        Assert.Null(problem);
        Assert.Equal(new LoginName(user, target), l);
    }

    [Theory]
    [InlineData("Ops~web")]
    [InlineData("~web")]
    [InlineData("o ps~web")]
    public void Malformed_user_parts_are_refused(string login)
    {
        Assert.Null(LoginName.Parse(login, out var problem));
        Assert.Contains("is not a user name", problem);
    }

    [Fact]
    public void A_login_without_target_lists_what_the_user_may_reach()
    {
        var user = new SshUser { Name = "ops", Apps = new() { ["shop"] = new SshAppAccess { Shell = false } } };
        var text = TargetResolver.Reachable(Snapshot(), user);
        Assert.Contains("web.shop  exec only  3 live: aaa111, bbb222, ccc333", text);
        Assert.Contains("worker.shop  exec only  1 live: eee555", text);
        Assert.DoesNotContain("blog", text);
        Assert.Contains("nothing live", TargetResolver.Reachable(Snapshot(), user with { Apps = [] }));
    }
}
