using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using EdgeEru.TestSupport;
using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Scenario.Tests;

/// <summary><c>./eru dev --hosts 2</c> for the console's browser test: the demo app, its LB domain, agents that relay logs.</summary>
public sealed class ConsoleCluster : DevCluster
{
    protected override string[] ClusterArgs => ["--hosts", "2"];
}

/// <summary>
/// eru-core's console in a real browser (Debian chromium driven by Playwright) against a whole <c>./eru dev</c> cluster,
/// asserting what an operator sees and does: logging in with the printed token, the demo app's workloads live, its DNS
/// names, LB graph and SSH sessions, scaling it from a spec, a killed container's row turning, its removal, live logs,
/// a read token that sees no actions and whose action the API refuses anyway, and a rolling replace.
/// </summary>
[Collection(DevClusters.Name)]
public sealed partial class ConsoleBrowserTests(ConsoleCluster cluster, ITestOutputHelper output) : IClassFixture<ConsoleCluster>
{
    // Generous: a loaded 2-core machine deploys, health-checks and relays slowly; the asserts wait on conditions only.
    private static readonly LocatorAssertionsToHaveCountOptions Slow = new() { Timeout = 120_000 };
    private static readonly LocatorAssertionsToContainTextOptions SlowText = new() { Timeout = 120_000 };

    [Fact]
    public Task An_operator_logs_in_scales_hello_sees_a_killed_container_follows_logs_a_read_token_gets_no_actions_and_replaces() =>
        cluster.RunAsync(output, RunAsync);

    private async Task RunAsync()
    {
        var dev = cluster.Dev;
        Assert.Matches(@"^http://127\.0\.0\.1:\d+/console#token=\S+$", dev.ConsoleUrl); // the banner's line
        var baseUrl = dev.ConsoleUrl[..dev.ConsoleUrl.IndexOf("/console", StringComparison.Ordinal)];
        var coreToken = dev.Token("core");
        Assert.EndsWith("#token=" + coreToken, dev.ConsoleUrl, StringComparison.Ordinal);
        var network = NetworkFlag().Match(string.Join('\n', dev.Lines)).Groups[1].Value;
        Assert.NotEmpty(network);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = "/usr/bin/chromium", Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });

        // 1. Log in with Core's token through the form; nodes with their bars, hello's four workloads live.
        var page = await browser.NewPageAsync();
        await page.GotoAsync(baseUrl + "/console");
        await Assertions.Expect(page.Locator("#login")).ToBeVisibleAsync();
        await page.Locator("#token").FillAsync(coreToken);
        await page.Locator("#login button[type=submit]").ClickAsync();
        await Assertions.Expect(page.Locator("#who")).ToContainTextAsync("bootstrap (admin)");
        foreach (var node in new[] { "h1", "h2" })
        {
            var nodeRow = page.Locator($"#nodes tr[data-node='{node}']");
            await Assertions.Expect(nodeRow.Locator("td.alive")).ToHaveTextAsync("alive", new() { Timeout = 60_000 });
            await Assertions.Expect(nodeRow.Locator("td.schedulable")).ToHaveTextAsync("yes");
            await Assertions.Expect(nodeRow.Locator("td.memory [role=meter]")).ToBeVisibleAsync();
            await Assertions.Expect(nodeRow.Locator("td.cpu [role=meter]")).ToBeVisibleAsync();
        }
        var hello = page.Locator("table[data-app='hello']");
        await Assertions.Expect(hello.Locator("tr[data-workload]")).ToHaveCountAsync(4, Slow);
        await Assertions.Expect(hello.Locator("tr[data-live='true']")).ToHaveCountAsync(4, Slow);
        await Assertions.Expect(hello.Locator("tr[data-live='true'] td.state").First).ToHaveTextAsync("live");

        // 2. hello's panel: DNS names, the LB domain's rule graph (the LB's renderer), SSH sessions from the gateway's audit.
        Assert.Contains("console-ssh", await dev.SshAsync("web.hello", "echo console-ssh"), StringComparison.Ordinal);
        await page.Locator("a.open[data-app='hello']").ClickAsync();
        await Assertions.Expect(page.Locator("#dns tr[data-name='web.hello.eru']")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#dns tr[data-name='v2.web.hello.eru']")).ToBeVisibleAsync();
        var graph = page.Locator("#domains svg[data-domain='hello.eru.local']");
        await Assertions.Expect(graph).ToBeVisibleAsync();
        await Assertions.Expect(graph.Locator("g[data-node='canary-header'] .id")).ToHaveTextAsync("canary-header (init)");
        await Assertions.Expect(graph.Locator("g[data-node='split'] .label")).ToHaveTextAsync("10% by cookie:uid");
        await Assertions.Expect(page.Locator("#ssh tr[data-event='session_end']")).ToContainTextAsync("echo console-ssh");
        await Assertions.Expect(page.Locator("#ssh tr[data-event='session_start']")).ToContainTextAsync(dev.SshUser);

        // 3. Scale hello.web from 4 to 5 with its spec (examples/hello.yaml, as eru deploy takes it), confirmed.
        await page.Locator("#spec").FillAsync(await File.ReadAllTextAsync(Path.Combine(Repo.Root, "examples", "hello.yaml")));
        await page.Locator("#network").FillAsync(network);
        await page.Locator("#tags").FillAsync("v3");
        await page.Locator("#env").FillAsync("VERSION=v3");
        await page.Locator("input.scale-to[data-entrypoint='web']").FillAsync("5");
        await page.Locator("button.do-scale").ClickAsync();
        await Assertions.Expect(page.Locator("#confirm-text")).ToContainTextAsync("deploy 1 more of hello.web");
        await page.Locator("#confirm-ok").ClickAsync();
        await Assertions.Expect(page.Locator("#action-result")).ToContainTextAsync("1 created, 0 failed", SlowText);
        await Assertions.Expect(hello.Locator("tr[data-workload]")).ToHaveCountAsync(5, Slow);
        await Assertions.Expect(hello.Locator("tr[data-live='true']")).ToHaveCountAsync(5, Slow);
        await Assertions.Expect(page.Locator("#history tr[data-method='Deploy'][data-outcome='OK']")).ToHaveCountAsync(1, Slow);
        await Assertions.Expect(page.Locator("#history tr[data-method='Deploy']")).ToContainTextAsync("bootstrap");

        // 4. A container killed behind Core's back: its row turns, with the condition that fails; then it is removed.
        var victim = (await dev.PsAsync("hello")).First(w => w.Tags.Contains("v3"));
        await dev.DockerAsync(victim.Node, "kill", victim.Name);
        var row = hello.Locator($"tr[data-workload='{victim.Id}']");
        await Assertions.Expect(row).ToHaveAttributeAsync("data-live", "false", new() { Timeout = 60_000 });
        await Assertions.Expect(row.Locator("td.state")).ToContainTextAsync("running", new() { Timeout = 60_000 });
        await row.Locator("button.action-remove").ClickAsync();
        await Assertions.Expect(page.Locator("#confirm-text")).ToContainTextAsync("remove " + victim.Name);
        await page.Locator("#confirm-ok").ClickAsync();
        await Assertions.Expect(row).ToHaveCountAsync(0, new() { Timeout = 60_000 });
        await Assertions.Expect(hello.Locator("tr[data-workload]")).ToHaveCountAsync(4);

        // 5. Live logs: follow, then a request no health check makes (a 404) shows up as it happens.
        await page.Locator("#follow").ClickAsync();
        await Assertions.Expect(page.Locator("#unfollow")).ToBeVisibleAsync();
        var target = (await dev.PsAsync("hello")).First(w => w.Live);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await Eventually.True(async () =>
        {
            using var r = await http.GetAsync(new Uri($"http://{target.Address}/console-test-{Guid.NewGuid():N}"));
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            return await page.Locator("#logs").TextContentAsync() is { } text && text.Contains("response:404", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(120), "a 404 in the followed logs");
        await Assertions.Expect(page.Locator($"#logs .line[data-ident='{target.Ident}']").First).ToBeVisibleAsync();

        // 6. A read token sees the same workloads and no action; the API refuses the action anyway (403, in the audit log).
        var reader = (await dev.EruAsync("token", "create", "console-reader", "--scope", "read",
            "--core", $"http://127.0.0.1:{dev.CorePort}", "--token", coreToken)).Split('\n').Select(l => l.Trim())
            .Single(l => l.StartsWith("eru.", StringComparison.Ordinal));
        var readPage = await browser.NewPageAsync();
        await readPage.GotoAsync($"{baseUrl}/console#token={reader}");
        await Assertions.Expect(readPage.Locator("#who")).ToContainTextAsync("console-reader (read)");
        var readHello = readPage.Locator("table[data-app='hello']");
        await Assertions.Expect(readHello.Locator("tr[data-live='true']")).ToHaveCountAsync(4, Slow);
        Assert.Equal(0, await readPage.Locator("button.action-remove, button.action-stop").CountAsync());
        await readPage.Locator("a.open[data-app='hello']").ClickAsync();
        await Assertions.Expect(readPage.Locator("#deploy")).ToBeHiddenAsync();
        await Assertions.Expect(readPage.Locator("button.do-scale")).ToHaveCountAsync(0);
        await Assertions.Expect(readPage.Locator("#ssh tbody")).ToContainTextAsync("needs scope admin");

        using var refused = new HttpRequestMessage(HttpMethod.Post, $"{baseUrl}/console/api/workloads/remove")
        {
            Content = new StringContent($"{{\"workloads\":[\"{target.Id}\"]}}", Encoding.UTF8, "application/json"),
        };
        refused.Headers.Authorization = new("Bearer", reader);
        using var answer = await http.SendAsync(refused);
        var body = await answer.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        Assert.Contains("Remove needs scope deploy:APP", body, StringComparison.Ordinal);
        var audit = await File.ReadAllLinesAsync(Path.Combine(dev.StateDir, "core-audit.jsonl"));
        Assert.Contains(audit, l => l.Contains("\"who\":\"console-reader\"", StringComparison.Ordinal)
            && l.Contains("\"method\":\"Remove\"", StringComparison.Ordinal)
            && l.Contains("\"outcome\":\"PermissionDenied\"", StringComparison.Ordinal));
        Assert.Single(await dev.PsAsync("hello"), w => w.Id == target.Id); // still there

        // 7. A rolling replace of hello.web by the spec as v4, confirmed: every row turns into a live v4 one.
        await page.Locator("#tags").FillAsync("v4");
        await page.Locator("#env").FillAsync("VERSION=v4");
        await page.Locator("#do-replace").ClickAsync();
        await Assertions.Expect(page.Locator("#confirm-text")).ToContainTextAsync("replace hello by this spec");
        await page.Locator("#confirm-ok").ClickAsync();
        var replaced = new LocatorAssertionsToContainTextOptions { Timeout = 300_000 };
        await Assertions.Expect(page.Locator("#action-result")).ToContainTextAsync("4 created, 0 failed", replaced);
        await Assertions.Expect(hello.Locator("tr[data-live='true']").Filter(new() { HasText = "v4" })).ToHaveCountAsync(4, Slow);
        await Assertions.Expect(hello.Locator("tr[data-workload]")).ToHaveCountAsync(4, Slow);
        await Assertions.Expect(page.Locator("#history tr[data-method='Replace'][data-outcome='OK']")).ToHaveCountAsync(1, Slow);
    }

    [GeneratedRegex(@"--network (\S+)")]
    private static partial Regex NetworkFlag();
}
