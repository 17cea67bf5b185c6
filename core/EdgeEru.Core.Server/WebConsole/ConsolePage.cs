using EdgeEru.RuleGraphView;

namespace EdgeEru.Core.Server.WebConsole;

/// <summary>
/// The console's page: plain HTML, CSS and ES modules embedded in the assembly (no build step), holding no data, so
/// served without a token; everything it shows comes from the JSON API with the token the operator gives.
/// </summary>
internal static class ConsolePage
{
    private static readonly (string Path, string Resource, string Type)[] Files =
    [
        ("/console", "console.html", "text/html; charset=utf-8"),
        ("/console/console.js", "console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "console.css", "text/css; charset=utf-8"),
    ];

    /// <summary>The console on <paramref name="ports"/> only (the API's port stays gRPC, the ops port ops).</summary>
    public static void MapOnPorts(IApplicationBuilder app, IReadOnlySet<int> ports) =>
        app.MapWhen(ctx => ports.Contains(ctx.Connection.LocalPort), console =>
        {
            console.UseRouting();
            console.UseEndpoints(Map);
        });

    public static void Map(IEndpointRouteBuilder e)
    {
        e.MapGet("/", () => Results.Redirect("/console"));
        foreach (var (path, resource, type) in Files)
        {
            var text = Read(resource);
            e.MapGet(path, (HttpContext http) => Page(http, text, type));
        }
        e.MapGet("/console/rule-graph.js", (HttpContext http) => Page(http, RuleGraphLabels.Script, "text/javascript; charset=utf-8"));
        ConsoleRoutes.Map(e);
    }

    /// <summary>
    /// A file of the page, which only its own origin may script, fetch from or frame (a page with actions must not be
    /// framed by another site); inline styles are the renderer's and the bars'.
    /// </summary>
    private static IResult Page(HttpContext http, string text, string type)
    {
        http.Response.Headers.ContentSecurityPolicy =
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
        http.Response.Headers.XContentTypeOptions = "nosniff";
        return Results.Content(text, type);
    }

    private static string Read(string name)
    {
        using var s = typeof(ConsolePage).Assembly.GetManifestResourceStream("EdgeEru.Core.Server.WebConsole." + name)
            ?? throw new InvalidOperationException($"{name} is not embedded");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
