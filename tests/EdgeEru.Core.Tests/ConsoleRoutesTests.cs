using EdgeEru.Core.Server;
using EdgeEru.Core.Server.WebConsole;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Xunit;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>The console's JSON endpoints and the scope table (pure): every endpoint is checked under an entry of it.</summary>
public sealed class ConsoleRoutesTests
{
    /// <summary>The endpoints the console maps, as ASP.NET Core routes them (not the table's own list).</summary>
    private static List<RouteEndpoint> MappedEndpoints()
    {
        using var app = WebApplication.CreateBuilder().Build();
        ConsolePage.Map(app);
        return [.. ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()];
    }

    [Fact]
    public void Every_console_api_endpoint_is_checked_under_an_entry_of_the_scope_table()
    {
        var api = MappedEndpoints().Where(e => e.RoutePattern.RawText!.StartsWith(ConsoleRoutes.Prefix + "/", StringComparison.Ordinal)
            && !e.RoutePattern.RawText.Contains("{**rest}", StringComparison.Ordinal)).ToList();
        Assert.Equal(ConsoleRoutes.Routes.Count(), api.Count);
        foreach (var endpoint in api)
        {
            var route = endpoint.Metadata.GetMetadata<ConsoleRoute>();
            Assert.True(route is not null, $"{endpoint.DisplayName} was mapped outside ConsoleRoutes' table: it has no scope");
            var table = route.IsView ? ScopeTable.ConsoleViews : ScopeTable.Methods;
            Assert.True(table.TryGetValue(route.Rule, out var rule),
                $"{route.Verb} {route.Pattern} names {route.Rule}, which ScopeTable.{(route.IsView ? "ConsoleViews" : "Methods")} lacks");
            Assert.Equal(rule, ScopeTable.For(route.MethodPath)); // the gate finds the same entry under the path it checks
            if (route.Verb != "GET") Assert.True(rule.Audited, $"{route.Pattern} changes something: its entry must be audited");
            if (!route.IsView) Assert.NotNull(V1.Core.Descriptor.FindMethodByName(route.Rule));
        }
        // Nothing stale: each console view is some endpoint's.
        Assert.Empty(ScopeTable.ConsoleViews.Keys.Except(ConsoleRoutes.Routes.Where(r => r.IsView).Select(r => r.Rule)));
        // A view never hides under a service method's name (the gate would check it as that method).
        Assert.Empty(ScopeTable.ConsoleViews.Keys.Intersect(ScopeTable.Methods.Keys));
        Assert.Equal(Need.Admin, ScopeTable.For(ScopeTable.ConsoleViewPath + "NotAView").Need);
    }

    [Fact]
    public void Console_views_need_what_they_show()
    {
        Assert.Equal(new MethodRule(Need.Read, false), ScopeTable.ConsoleViews["AppHistory"]);
        Assert.Equal(new MethodRule(Need.Read, false), ScopeTable.ConsoleViews["LbDomains"]);
        Assert.Equal(Need.Admin, ScopeTable.ConsoleViews["SshSessions"].Need);
        Assert.Equal(ScopeTable.Methods["Deploy"], ScopeTable.For("/edgeeru.core.v1.Core/Deploy"));
    }

    private const string Hello = """
        appname: hello
        entrypoints:
          web:
            image: edgeeru/busybox:test
            cmd: httpd -f -p 80
            ports:
              - http:80/tcp
        """;

    private static ConsoleRoutes.SpecBody Body(string? spec = Hello, int? count = 2, string? pod = "dev", string? entrypoint = null) =>
        new(spec, entrypoint, pod, count, "eru-mv", ["v3"], ["VERSION=v3"], 32L << 20, 0.2, null);

    [Theory]
    [InlineData(null, 1, "dev", "spec: the app spec (YAML, as eru deploy takes it) is missing")]
    [InlineData("appname: [", 1, "dev", "spec: line")]
    [InlineData("appname: shop\nentrypoints:\n  web:\n    image: x\n", 1, "dev",
        "spec: appname \"shop\" is not the app of this URL (hello)")]
    [InlineData(Hello, 0, "dev", "count must be 1-100, got 0")]
    [InlineData(Hello, 101, "dev", "count must be 1-100, got 101")]
    [InlineData(Hello, null, "dev", "count must be 1-100, got none")]
    [InlineData(Hello, 1, "", "pod: name the pod to deploy into")]
    public void A_spec_body_with_a_problem_is_refused_naming_it(string? spec, int? count, string pod, string problem)
    {
        var (request, said) = ConsoleRoutes.DeployRequest("hello", Body(spec, count, pod));
        Assert.Null(request);
        Assert.StartsWith(problem, said, StringComparison.Ordinal);
    }

    [Fact]
    public void A_spec_body_becomes_the_deploy_request_eru_deploy_sends()
    {
        var (request, problem) = ConsoleRoutes.DeployRequest("hello", Body());
        Assert.Null(problem);
        Assert.Equal("hello", request!.App);
        Assert.Equal("web", request.Entrypoint); // the spec's only entrypoint
        Assert.Equal("edgeeru/busybox:test", request.Image);
        Assert.Equal(["httpd", "-f", "-p", "80"], request.Command);
        Assert.Equal(2, request.Count);
        Assert.Equal(["v3"], request.Tags);
        Assert.Equal(["VERSION=v3"], request.Env);
        Assert.Equal("", request.Networks["eru-mv"]);
        Assert.Equal(32L << 20, request.Resources.MemoryLimitBytes);
        Assert.Equal("http", request.Ports.Single().Name);
        Assert.StartsWith("spec: entrypoints: no entrypoint \"worker\"",
            ConsoleRoutes.DeployRequest("hello", Body(entrypoint: "worker")).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_apps_history_is_its_changes_newest_first_and_a_cut_line_is_passed_over()
    {
        string[] lines =
        [
            """{"time":"t1","who":"ci","method":"Deploy","apps":["hello"],"target":"hello.web","outcome":"OK"}""",
            """{"time":"t2","who":"ci","method":"ListWorkloads","outcome":"OK"}""",
            """{"time":"t3","who":"ops","method":"Remove","apps":["shop"],"target":"shop_web_1","outcome":"OK"}""",
            """{"time":"t4","who":"ops","method":"Control","apps":["hello","shop"],"target":"stop a,b","outcome":"PermissionDenied"}""",
            """{"time":"t5","who":"ops","meth""",
        ];
        var history = ConsoleViews.History(lines, "hello");
        Assert.Equal(["t4", "t1"], history.Select(e => e["time"]!.GetValue<string>()));
    }

    [Fact]
    public void Http_statuses_say_what_the_grpc_refusals_say()
    {
        Assert.Equal(401, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.Unauthenticated));
        Assert.Equal(403, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.PermissionDenied));
        Assert.Equal(400, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.InvalidArgument));
        Assert.Equal(404, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.NotFound));
        Assert.Equal(409, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.ResourceExhausted));
        Assert.Equal(503, ConsoleGate.HttpStatus(Grpc.Core.StatusCode.Unavailable));
    }
}
