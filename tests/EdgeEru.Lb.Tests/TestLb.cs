using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>An eru-lb a test started: its host and the loopback ports of its traffic, /metrics and admin API.</summary>
internal sealed record TestLb(WebApplication App, int Port, int OpsPort, int AdminPort) : IAsyncDisposable
{
    /// <summary>
    /// Starts eru-lb against <paramref name="etcdUrl"/> (and <paramref name="prefix"/>, if any) with its
    /// three listeners on free loopback ports, admin token <paramref name="adminToken"/>, logging to the
    /// test's output; <paramref name="extra"/> flags come last (and win).
    /// </summary>
    public static async Task<TestLb> StartAsync(
        string etcdUrl, string? prefix, ITestOutputHelper output, string adminToken = "t", params string[] extra)
    {
        var (port, opsPort, adminPort) = (Ports.FreeTcp(), Ports.FreeTcp(), Ports.FreeTcp());
        // A test that must know the traffic port first (a CA validating HTTP-01 on it) passes its own Lb:Urls.
        var urls = Array.LastIndexOf(extra, "--Lb:Urls");
        if (urls >= 0 && urls + 1 < extra.Length) port = new Uri(extra[urls + 1]).Port;
        string[] args =
        [
            "--Registry:Endpoints", etcdUrl, .. prefix is null ? Array.Empty<string>() : ["--Registry:Prefix", prefix],
            "--Lb:Urls", $"http://127.0.0.1:{port}", "--Http:Urls", $"http://127.0.0.1:{opsPort}",
            "--Lb:AdminUrls", $"http://127.0.0.1:{adminPort}", "--Lb:AdminToken", adminToken, .. extra,
        ];
        var app = LbHost.Create(args, logging => logging.AddProvider(new XunitLoggerProvider(output)));
        await app.StartAsync();
        return new TestLb(app, port, opsPort, adminPort);
    }

    public Uri Url => new($"http://127.0.0.1:{Port}");

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
