using EdgeEru.Registry;
using EdgeEru.TestSupport;
using Microsoft.Playwright;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>The dashboard in a real browser (Debian chromium driven by Playwright), asserting what a person sees.</summary>
public sealed partial class LbProxyTests
{
    [Fact]
    public async Task The_dashboard_draws_the_graph_with_hits_and_shows_a_workload_turning_unhealthy()
    {
        for (var i = 0; i < 5; i++) await Get("/", canary: "1"); // hits on canary-header and v2

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await browser.NewPageAsync();
        await page.GotoAsync($"{_admin.BaseAddress}dashboard#token={Token}");

        // The seeded domain's graph: every node drawn, the init marked, edges of both kinds, hit counts.
        var graph = page.Locator("svg[data-domain='hello.test']");
        await Assertions.Expect(graph).ToBeVisibleAsync();
        foreach (var node in new[] { "canary-header", "split", "v1", "v2" })
            await Assertions.Expect(graph.Locator($"g[data-node='{node}']")).ToBeVisibleAsync();
        await Assertions.Expect(graph.Locator("g[data-node='canary-header'] .id")).ToHaveTextAsync("canary-header (init)");
        await Assertions.Expect(graph.Locator("g[data-node='split'] .label")).ToHaveTextAsync("10% by cookie:uid");
        Assert.True(await graph.Locator("path.edge.succ").CountAsync() >= 2);
        Assert.True(await graph.Locator("path.edge.fail").CountAsync() >= 2);
        var hits = int.Parse((await graph.Locator("g[data-node='v2'] .hits").TextContentAsync())!.Split(' ')[0],
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(hits >= 5, $"v2 shows {hits} hits");

        // Backends with their workloads, healthy; then the agent marks one unhealthy and the page says so.
        var v1a = page.Locator("section[data-domain='hello.test'] table[data-backend='v1'] tr[data-workload='v1aaaa']");
        await Assertions.Expect(v1a.Locator("td.state")).ToHaveTextAsync("healthy");
        await Assertions.Expect(v1a).ToContainTextAsync("127.0.0.2:");
        await _store.PutAsync(Kinds.WorkloadStatus,
            Samples.Status("v1aaaa", ip: "127.0.0.2", healthy: false) with { Reason = "http GET /healthz: 503" }, _lease!.Id);
        await Assertions.Expect(v1a.Locator("td.state")).ToHaveTextAsync("unhealthy: http GET /healthz: 503", new() { Timeout = 15_000 });
        await Assertions.Expect(
            page.Locator("section[data-domain='hello.test'] table[data-backend='v1'] tr[data-workload='v1bbbb'] td.state"))
            .ToHaveTextAsync("healthy");

        // Without the token the page shows no data, only the token form.
        var anonymous = await browser.NewPageAsync();
        await anonymous.GotoAsync($"{_admin.BaseAddress}dashboard");
        await Assertions.Expect(anonymous.Locator("#login")).ToBeVisibleAsync();
        Assert.Equal(0, await anonymous.Locator("svg").CountAsync());
    }
}
