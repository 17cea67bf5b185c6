using EdgeEru.Core.Api;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Scheduling;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>App spec files (ERU's app.yaml style), commands written as one string, and the spec on the wire.</summary>
public class AppSpecTests
{
    private static readonly DeploySpec Options = new()
    {
        App = "", Entrypoint = "", Image = "", Pod = "dev", Count = 2, MemoryRequest = 64L << 20,
    };

    [Fact]
    public void The_example_app_spec_parses_into_a_valid_deploy_spec()
    {
        var app = AppSpec.Parse(File.ReadAllText(Path.Combine(Repo.Root, "examples", "hello.yaml")));
        var spec = app.ToDeploySpec("web", Options);
        Assert.Equal("hello", spec.App);
        Assert.Equal("edgeeru/busybox:test", spec.Image);
        Assert.Equal(["sh", "-c", "mkdir -p /www; echo \"hello from $(hostname) (${VERSION:-?})\" > /www/index.html; " +
            "exec httpd -f -v -p 80 -h /www"], spec.Command);
        Assert.Equal("http", spec.Ports.Single().Name);
        Assert.Equal(80, spec.Ports.Single().Port);
        Assert.Equal("http", spec.Healthcheck!.Http!.Port);
        Assert.Single(spec.AfterStart);
        Assert.Empty(spec.Problems());
    }

    [Fact]
    public void ERU_style_numeric_ports_and_checks_are_named()
    {
        var app = AppSpec.Parse("""
            appname: shop
            entrypoints:
              api:
                cmd: ./api --port 5000
                ports: ["5000/tcp", "dns:53/udp", {name: admin, port: 9000}]
                healthcheck: {tcp_ports: ["5000"], http_port: "9000", url: /ping, code: 204}
                restart: always
                hook: {before_stop: ["./drain"]}
            """);
        var spec = app.ToDeploySpec("api", Options with { Image = "shop:1" });
        Assert.Equal(["p5000", "dns", "admin"], spec.Ports.Select(p => p.Name));
        Assert.Equal("udp", spec.Ports[1].Protocol);
        Assert.Equal(["p5000"], spec.Healthcheck!.TcpPorts);
        Assert.Equal(("admin", "/ping", 204),
            (spec.Healthcheck.Http!.Port, spec.Healthcheck.Http.Path, spec.Healthcheck.Http.ExpectedCode));
        Assert.Equal("always", spec.Restart);
        Assert.Equal(["./drain"], spec.BeforeStop);
        Assert.Empty(spec.Problems());
    }

    [Theory]
    [InlineData("appname: a\nentrypoints:\n  web:\n    cmdd: x\n", "line 4")] // unknown field, with its place
    [InlineData("appname: a\nentrypoints: [1, 2\n", "line")] // broken YAML
    [InlineData("", "empty")]
    public void Bad_files_are_refused_with_where(string yaml, string expected)
    {
        var ex = Assert.Throws<FormatException>(() => AppSpec.Parse(yaml));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_fields_are_named()
    {
        var app = AppSpec.Parse("appname: a\nentrypoints:\n  web:\n    ports: [\"http:eighty\"]\n");
        Assert.Contains("entrypoints.web.ports[0]", Assert.Throws<FormatException>(() => app.ToDeploySpec("web", Options)).Message,
            StringComparison.Ordinal);
        Assert.Contains("no entrypoint \"worker\"", Assert.Throws<FormatException>(() => app.ToDeploySpec("worker", Options)).Message,
            StringComparison.Ordinal);
        var check = AppSpec.Parse("appname: a\nentrypoints:\n  web:\n    ports: [\"http:80\"]\n    healthcheck: {tcp_ports: [\"81\"]}\n");
        Assert.Contains("healthcheck.tcp_ports", Assert.Throws<FormatException>(() => check.ToDeploySpec("web", Options)).Message,
            StringComparison.Ordinal);

        var spec = AppSpec.Parse("appname: Bad_App\nentrypoints:\n  we_b:\n    restart: sometimes\n    ports: [\"http:70000\"]\n")
            .ToDeploySpec("we_b", Options with { Count = 0 });
        var problems = string.Join("\n", spec.Problems());
        foreach (var field in new[]
            { "app \"Bad_App\"", "entrypoint \"we_b\"", "image is empty", "count 0", "restart \"sometimes\"", "ports: http number 70000" })
            Assert.Contains(field, problems, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a b  c", new[] { "a", "b", "c" })]
    [InlineData("sh -c 'echo $X; exit 3'", new[] { "sh", "-c", "echo $X; exit 3" })]
    [InlineData("echo \"a \\\"b\\\"\" c\\ d", new[] { "echo", "a \"b\"", "c d" })]
    [InlineData("x ''", new[] { "x", "" })]
    [InlineData("   ", new string[0])]
    public void Commands_split_like_a_shell_without_expansion(string command, string[] words) =>
        Assert.Equal(words, CommandLine.Split(command));

    [Fact]
    public void An_unclosed_quote_is_a_named_problem()
    {
        Assert.Throws<FormatException>(() => CommandLine.Split("sh -c 'oops"));
        var spec = Options with { App = "a", Entrypoint = "web", Image = "i", AfterStart = ["sh -c \"oops"] };
        Assert.Contains(spec.Problems(), p => p.StartsWith("hooks: unclosed", StringComparison.Ordinal));
    }

    [Fact]
    public void A_spec_survives_the_wire()
    {
        var app = AppSpec.Parse(File.ReadAllText(Path.Combine(Repo.Root, "examples", "hello.yaml")));
        var spec = app.ToDeploySpec("web", Options with
        {
            Nodes = ["h1"], NodeLabels = new Dictionary<string, string> { ["disk"] = "ssd" }, Tags = ["v1"], Strategy = Strategy.Drained,
            Networks = new Dictionary<string, string> { ["eru-mv"] = "198.18.0.9" }, Count = 1, CpuBind = true, Cpu = 1.5, Force = true,
        });
        var back = SpecMapping.ToSpec(SpecMapping.ToRequest(spec));
        Assert.Equal(SpecMapping.ToRequest(spec), SpecMapping.ToRequest(back));
        Assert.Equal((spec.Strategy, spec.Cpu, spec.CpuBind, spec.Force), (back.Strategy, back.Cpu, back.CpuBind, back.Force));
        Assert.Equal(spec.Healthcheck, back.Healthcheck);
    }
}
