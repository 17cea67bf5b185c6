using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

public class SshUserTests
{
    [Fact]
    public void A_valid_user_has_no_problems_and_app_entries_win_over_the_wildcard()
    {
        var u = new SshUser
        {
            Name = "ops", Keys = [Samples.SshKeyLine, "no-pty " + Samples.SshKeyLine],
            Apps = new() { ["hello"] = new SshAppAccess { Shell = false, User = "1000:1000" }, ["*"] = new SshAppAccess { User = "app" } },
        };
        Assert.Empty(u.Validate());
        Assert.False(u.AccessTo("hello")!.Shell);
        Assert.Equal("app", u.AccessTo("shop")!.User);
        Assert.Null((u with { Apps = [] }).AccessTo("hello"));
    }

    [Theory]
    [InlineData("ssh-ed25519", "no key type")]
    [InlineData("ssh-dss AAAAB3NzaC1kc3MAAAA=", "no key type")]
    [InlineData("ssh-ed25519 !!!", "not base64")]
    [InlineData("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPu+0Hcve7gZNwdjyd3yxaAi6Fr+9VsrNZulrAR5JGAW", "does not hold a ssh-rsa key")]
    [InlineData("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "more than one line")]
    public void Bad_key_lines_are_named(string line, string expected)
    {
        var problems = new SshUser { Name = "ops", Keys = [line] }.Validate();
        Assert.Contains(problems, p => p.Contains("key 1") && p.Contains(expected));
    }

    [Fact]
    public void Bad_names_apps_and_container_users_are_named()
    {
        var problems = new SshUser
        {
            Name = "Ops", Apps = new() { ["Bad App"] = new SshAppAccess(), ["hello"] = new SshAppAccess { User = "root;rm" } },
        }.Validate();
        Assert.Contains(problems, p => p.Contains("\"Ops\""));
        Assert.Contains(problems, p => p.Contains("\"Bad App\""));
        Assert.Contains(problems, p => p.Contains("\"root;rm\""));
    }
}
