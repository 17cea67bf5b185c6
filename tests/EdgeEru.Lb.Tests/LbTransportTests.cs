using System.Security.Cryptography;
using System.Text;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// What the socket layer under the proxy must get right, on both transports (epoll, the default on Linux,
/// and Kestrel's sockets): bodies larger than every buffer in both directions, many connections at once,
/// pipelined requests, and a client leaving in the middle of a response.
/// </summary>
public sealed class LbTransportTests(EtcdFixture etcd, ITestOutputHelper output)
    : OneBackendLbTests(etcd, output, "big1", "127.0.0.5"), IClassFixture<EtcdFixture>
{
    private readonly TaskCompletionSource _slowAborted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override void Map(WebApplication backend)
    {
        backend.MapPost("/upload", async ctx =>
        {
            using var sha = SHA256.Create();
            var length = 0L;
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await ctx.Request.Body.ReadAsync(buffer)) > 0)
            {
                sha.TransformBlock(buffer, 0, n, null, 0);
                length += n;
            }
            sha.TransformFinalBlock([], 0, 0);
            await ctx.Response.WriteAsync($"{length} {Convert.ToHexStringLower(sha.Hash!)}");
        });
        backend.MapGet("/download/{mb:int}", async (HttpContext ctx, int mb) =>
        {
            ctx.Response.ContentLength = mb * 1024L * 1024;
            var block = Block();
            for (var i = 0; i < mb * 16; i++) await ctx.Response.Body.WriteAsync(block);
        });
        backend.MapGet("/echo/{who}", (string who) => who);
        backend.MapGet("/slow", async ctx =>
        {
            try
            {
                for (var i = 0; i < 600; i++)
                {
                    await ctx.Response.WriteAsync(new string('x', 1000) + "\n", ctx.RequestAborted);
                    await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                    await Task.Delay(50, ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                _slowAborted.TrySetResult();
            }
        });
    }

    /// <summary>A 64 KB block of known bytes (so a download's hash is known without keeping it).</summary>
    private static byte[] Block() => Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 7 + i / 251)).ToArray();

    private async Task<(HttpClient Client, int Port, int OpsPort)> StartLb(string transport)
    {
        var lb = await StartLbAsync("--Lb:Transport", transport);
        var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 200 })
        {
            BaseAddress = lb.Url,
            DefaultRequestHeaders = { Host = "hello.test" },
            Timeout = TimeSpan.FromSeconds(60),
        };
        await Eventually.True(async () =>
        {
            try { return await client.GetStringAsync("/echo/ready") == "ready"; }
            catch (HttpRequestException) { return false; }
        }, TimeSpan.FromSeconds(15), "the LB routes to the backend");
        return (client, lb.Port, lb.OpsPort);
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Bodies_larger_than_every_buffer_go_through_both_ways_intact(string transport)
    {
        var (http, _, _) = await StartLb(transport);
        using (http)
        {
            var upload = new byte[12 * 1024 * 1024 + 17];
            new Random(5).NextBytes(upload);
            using var posted = await http.PostAsync("/upload", new ByteArrayContent(upload));
            Assert.Equal($"{upload.Length} {Convert.ToHexStringLower(SHA256.HashData(upload))}", await posted.Content.ReadAsStringAsync());

            // 48 MB down, read slowly at first so the LB's socket buffer to us fills and it must wait for room.
            using var resp = await http.GetAsync("/download/48", HttpCompletionOption.ResponseHeadersRead);
            await using var body = await resp.Content.ReadAsStreamAsync();
            using var sha = SHA256.Create();
            var buffer = new byte[256 * 1024];
            long total = 0;
            int n;
            while ((n = await body.ReadAsync(buffer)) > 0)
            {
                if (total < 4 * 1024 * 1024) await Task.Delay(5);
                sha.TransformBlock(buffer, 0, n, null, 0);
                total += n;
            }
            sha.TransformFinalBlock([], 0, 0);
            var expected = SHA256.Create();
            var block = Block();
            for (var i = 0; i < 48 * 16; i++) expected.TransformBlock(block, 0, block.Length, null, 0);
            expected.TransformFinalBlock([], 0, 0);
            Assert.Equal(48L * 1024 * 1024, total);
            Assert.Equal(expected.Hash, sha.Hash);
        }
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Many_connections_at_once_each_get_their_own_answers(string transport)
    {
        var (http, _, _) = await StartLb(transport);
        using (http)
        {
            var wrong = 0;
            await Parallel.ForEachAsync(Enumerable.Range(0, 150), new ParallelOptions { MaxDegreeOfParallelism = 150 }, async (c, ct) =>
            {
                for (var i = 0; i < 20; i++)
                {
                    var who = $"c{c}-r{i}";
                    if (await http.GetStringAsync($"/echo/{who}", ct) != who) Interlocked.Increment(ref wrong);
                }
            });
            Assert.Equal(0, wrong);
        }
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Pipelined_requests_in_one_packet_are_answered_in_order(string transport)
    {
        var (http, port, opsPort) = await StartLb(transport);
        http.Dispose();
        var requests = string.Concat(Enumerable.Range(0, 3).Select(i => $"GET /echo/p{i} HTTP/1.1\r\nHost: hello.test\r\n\r\n"));
        using var socket = await RawHttp.OpenAsync(port, requests, halfClose: false);
        var all = await RawHttp.ReadAsync(socket, until: text => text.Contains("p2", StringComparison.Ordinal));
        // The connection is on the transport asked for (the epoll one counts its connections).
        using var ops = new HttpClient();
        var metrics = await ops.GetStringAsync($"http://127.0.0.1:{opsPort}/metrics");
        var open = metrics.Split('\n').Where(l => l.StartsWith("eru_lb_epoll_connections ", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)).SingleOrDefault();
        if (transport == "epoll") Assert.True(open >= 1, metrics);
        Assert.Equal(3, all.Split("HTTP/1.1 200").Length - 1);
        Assert.True(all.IndexOf("p0", StringComparison.Ordinal) < all.IndexOf("p1", StringComparison.Ordinal)
            && all.IndexOf("p1", StringComparison.Ordinal) < all.IndexOf("p2", StringComparison.Ordinal), all);
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_client_that_sends_its_request_and_FIN_together_is_not_left_hanging(string transport)
    {
        var (http, port, _) = await StartLb(transport);
        http.Dispose();
        using var socket = await RawHttp.OpenAsync(port, "GET /echo/half-closed HTTP/1.1\r\nHost: hello.test\r\n\r\n", halfClose: true);
        // The FIN may sit behind the request in one read: the LB must still see it and close its side (Kestrel
        // takes a client's FIN for a client gone, on either transport), not wait for an edge that never comes.
        var text = new StringBuilder(await RawHttp.ReadAsync(socket, until: null));
        Assert.True(text.Length == 0 || text.ToString().StartsWith("HTTP/1.1 ", StringComparison.Ordinal), text.ToString());
    }

    [Fact]
    public async Task A_client_leaving_mid_response_aborts_the_request_to_the_workload()
    {
        var (http, _, _) = await StartLb("epoll");
        using (http)
        {
            var resp = await http.GetAsync("/slow", HttpCompletionOption.ResponseHeadersRead);
            var body = await resp.Content.ReadAsStreamAsync();
            Assert.True(await body.ReadAsync(new byte[100]) > 0);
            resp.Dispose(); // closes the connection mid-body
            await _slowAborted.Task.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal("after", await http.GetStringAsync("/echo/after"));
        }
    }

    [Fact]
    public void An_unknown_transport_is_refused_naming_the_setting()
    {
        var e = Assert.Throws<ArgumentException>(() => LbHost.Create(["--Registry:Endpoints", EtcdUrl, "--Lb:Transport", "io_uring"]));
        Assert.Contains("Lb:Transport", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("20000")]
    public void An_epoll_spin_out_of_range_is_refused_naming_the_setting(string spin)
    {
        var e = Assert.Throws<ArgumentException>(() => LbHost.Create(["--Registry:Endpoints", EtcdUrl, "--Lb:EpollSpin", spin]));
        Assert.Contains("Lb:EpollSpin", e.Message, StringComparison.Ordinal);
    }
}
