using System.Formats.Tar;
using System.Net.Sockets;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Files;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>What <c>eru build</c> sends as the context, and which tags Core takes (no engine needed).</summary>
public sealed class BuildContextTests
{
    [Theory]
    [InlineData("*.log", "debug.log", true)]
    [InlineData("*.log", "sub/debug.log", false)]
    [InlineData("**/*.log", "sub/deeper/debug.log", true)]
    [InlineData("**/*.log", "debug.log", true)]
    [InlineData("secret", "secret/a/b.txt", true)]
    [InlineData("/secret/", "secret/a.txt", true)]
    [InlineData("./secret", "secrets.txt", false)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "a/c", false)]
    [InlineData("[ab].txt", "b.txt", true)]
    [InlineData("[!ab].txt", "b.txt", false)]
    [InlineData("docs/**", "docs/x/y.md", true)]
    public void A_dockerignore_pattern_matches_a_path_or_its_parents(string pattern, string path, bool excluded) =>
        Assert.Equal(excluded, IgnoreRules.Parse([pattern]).Excludes(path));

    [Fact]
    public void The_last_matching_line_decides_and_comments_do_not_count()
    {
        var rules = IgnoreRules.Parse(["# a comment", "", "*.md", "!README.md", "docs/", "!docs/keep/**"]);
        Assert.True(rules.Excludes("CHANGES.md"));
        Assert.False(rules.Excludes("README.md"));
        Assert.True(rules.Excludes("docs/a.txt"));
        Assert.False(rules.Excludes("docs/keep/b.txt"));
        Assert.False(rules.Excludes("# a comment"));
        Assert.True(rules.HasExceptions);
    }

    [Fact]
    public async Task The_context_honours_dockerignore_keeps_the_Dockerfile_sends_links_as_links_and_leaves_sockets_out()
    {
        var dir = Directory.CreateTempSubdirectory("eru-ctx-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), "FROM scratch\n");
            await File.WriteAllTextAsync(Path.Combine(dir, ".dockerignore"), "Dockerfile\n*.tmp\nbuild/\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "a.txt"), "a");
            await File.WriteAllTextAsync(Path.Combine(dir, "b.tmp"), "b");
            Directory.CreateDirectory(Path.Combine(dir, "build", "obj"));
            await File.WriteAllTextAsync(Path.Combine(dir, "build", "obj", "c.o"), "c");
            Directory.CreateDirectory(Path.Combine(dir, "src"));
            await File.WriteAllTextAsync(Path.Combine(dir, "src", "main.c"), "int main;");
            File.CreateSymbolicLink(Path.Combine(dir, "passwd"), "/etc/passwd");
            File.CreateSymbolicLink(Path.Combine(dir, "etc"), "/etc"); // a directory link is not entered
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(dir, "app.sock")));

            using var tar = new MemoryStream();
            var count = await BuildContext.WriteAsync(dir, "Dockerfile", null, tar);
            tar.Position = 0;
            var entries = new Dictionary<string, TarEntry>();
            await using (var reader = new TarReader(tar))
                while (await reader.GetNextEntryAsync() is { } e) entries[e.Name] = e;
            string[] expected = [".dockerignore", "Dockerfile", "a.txt", "etc", "passwd", "src/", "src/main.c"];
            Assert.Equal(expected, entries.Keys.Order(StringComparer.Ordinal));
            Assert.Equal(7, count);
            Assert.Equal(TarEntryType.SymbolicLink, entries["passwd"].EntryType);
            Assert.Equal("/etc/passwd", entries["passwd"].LinkName);
            Assert.Equal(TarEntryType.SymbolicLink, entries["etc"].EntryType);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_Dockerfile_outside_the_directory_goes_into_the_context_under_its_own_name()
    {
        var dir = Directory.CreateTempSubdirectory("eru-ctx-").FullName;
        var other = Path.Combine(Path.GetTempPath(), "eru-outside-" + Guid.NewGuid().ToString("N")[..8] + ".Dockerfile");
        try
        {
            File.WriteAllText(Path.Combine(dir, "Dockerfile"), "FROM scratch\n");
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            File.WriteAllText(Path.Combine(dir, "sub", "Web.Dockerfile"), "FROM scratch\n");
            File.WriteAllText(other, "FROM scratch\n");
            Assert.Equal(("Dockerfile", null), BuildContext.LocateDockerfile(dir, null));
            Assert.Equal(("sub/Web.Dockerfile", null), BuildContext.LocateDockerfile(dir, "sub/Web.Dockerfile"));
            Assert.Equal((BuildContext.OutsideDockerfileName, other), BuildContext.LocateDockerfile(dir, other));
            Assert.Throws<FileNotFoundException>(() => BuildContext.LocateDockerfile(dir, "nope/Dockerfile"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
            File.Delete(other);
        }
    }

    [Fact]
    public void Registry_credentials_for_a_build_are_base64url_as_dockerd_decodes_them()
    {
        // "p???~~~" has a '/' in plain base64 (Docker.DotNet's encoding of this header), which dockerd would drop.
        var header = Docker.DockerEngine.RegistryConfig(new Dictionary<string, string> { ["h:1"] = "u>>>:p???~~~", ["t:2"] = "token" });
        Assert.DoesNotContain('/', header);
        Assert.DoesNotContain('+', header);
        using var json = System.Text.Json.JsonDocument.Parse(Convert.FromBase64String(header.Replace('-', '+').Replace('_', '/')));
        var h = json.RootElement.GetProperty("h:1");
        Assert.Equal(("u>>>", "p???~~~", "h:1"),
            (h.GetProperty("username").GetString(), h.GetProperty("password").GetString(), h.GetProperty("serveraddress").GetString()));
        Assert.Equal("token", json.RootElement.GetProperty("t:2").GetProperty("identitytoken").GetString());
    }

    [Theory]
    [InlineData("busybox")]
    [InlineData("busybox:1.36")]
    [InlineData("edgeeru/web:v1.2_3")]
    [InlineData("localhost:5000/a/b:c")]
    [InlineData("198.18.63.254:5000/team/web-app__x.y:1")]
    [InlineData("Registry.Example.com/web")] // uppercase only in the host part
    public void Valid_tags_are_taken(string tag) => Assert.Null(BuildSpec.TagProblem(tag));

    [Theory]
    [InlineData("Web:1")]
    [InlineData("web:")]
    [InlineData("web:-1")]
    [InlineData(":1")]
    [InlineData("a//b")]
    [InlineData("a/b/")]
    [InlineData("-a")]
    [InlineData("web app")]
    [InlineData("web@sha256:0000000000000000000000000000000000000000000000000000000000000000")]
    public void Invalid_tags_are_refused(string tag) => Assert.NotNull(BuildSpec.TagProblem(tag));
}
