using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Dev;
using EdgeEru.Lb.Transport;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// The event loops' batching: the lane's answers and workload requests are kept until the end of the loop's
/// turn and leave together, and receives and sends go to the kernel in io_uring batches. What a client
/// and a workload see must not change: bodies larger than the socket buffers reach a slow reader whole and
/// in order, pipelined answers keep their order, and an eru-lb without io_uring answers the same.
/// </summary>
public sealed class LbBatchingTests(EtcdFixture etcd, ITestOutputHelper output)
    : OneBackendLbTests(etcd, output, "w1", "127.0.0.8"), IClassFixture<EtcdFixture>
{
    private static readonly byte[] Big = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);

    protected override void Map(WebApplication backend)
    {
        backend.MapGet("/big", async ctx =>
        {
            ctx.Response.ContentLength = Big.Length;
            // In pieces of uneven sizes, so the LB relays many reads.
            for (var at = 0; at < Big.Length; at += 50_000)
                await ctx.Response.Body.WriteAsync(Big.AsMemory(at, Math.Min(50_000, Big.Length - at)));
        });
        backend.MapGet("/echo/{who}", async ctx =>
        {
            var body = Encoding.ASCII.GetBytes((string)ctx.Request.RouteValues["who"]!);
            ctx.Response.ContentLength = body.Length; // framed by length, as the test's reader expects
            await ctx.Response.Body.WriteAsync(body);
        });
    }

    [Fact]
    public async Task A_body_larger_than_the_socket_buffers_reaches_a_slow_reader_whole_and_before_the_next_answer()
    {
        var lb = await StartRoutingAsync(await StartLbAsync());
        await BigThenSmallAsync(lb.Port);
    }

    [Fact]
    public async Task Many_pipelined_requests_are_answered_in_order()
    {
        var lb = await StartRoutingAsync(await StartLbAsync());
        await PipelinedAsync(lb.Port);
    }

    [Fact]
    public async Task Receives_and_sends_go_through_io_uring_batches_or_the_reason_is_reported()
    {
        var lb = await StartRoutingAsync(await StartLbAsync());
        var before = await RingOpsAsync(lb.OpsPort);
        await PipelinedAsync(lb.Port);
        if (EpollLoop.RingUnavailable is { } why)
        {
            // No io_uring here (old kernel, or refused): the loops say why and make one call per socket.
            Output.WriteLine($"io_uring unavailable: {why}");
            Assert.False(string.IsNullOrWhiteSpace(why));
            return;
        }
        var after = await RingOpsAsync(lb.OpsPort);
        Assert.True(after.Receives > before.Receives && after.Sends > before.Sends, $"io_uring operations before {before}, after {after}");
    }

    [Fact]
    public async Task Without_io_uring_the_answers_are_the_same()
    {
        // The loops are the process's, so an eru-lb without io_uring runs in a process of its own.
        var (port, opsPort) = (Ports.FreeTcp(), Ports.FreeTcp());
        await using var lb = ChildProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "eru-lb.dll"),
            "--Registry:Endpoints", EtcdUrl, "--Registry:Prefix", Prefix, "--Lb:Urls", $"http://127.0.0.1:{port}",
            "--Http:Urls", $"http://127.0.0.1:{opsPort}", "--Lb:AdminUrls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Lb:AdminToken", "t",
            "--Lb:IoUring", "false", "--Logging:Format", "simple"], l => Output.WriteLine("[eru-lb] " + l));
        await Eventually.True(async () => await TryEchoAsync(port, "ready"), TimeSpan.FromSeconds(30), "the LB without io_uring routes");
        await BigThenSmallAsync(port);
        await PipelinedAsync(port);
        Assert.Equal((0, 0), await RingOpsAsync(opsPort));
    }

    private static async Task<TestLb> StartRoutingAsync(TestLb lb)
    {
        await Eventually.True(async () => await TryEchoAsync(lb.Port, "ready"), TimeSpan.FromSeconds(15), "the LB routes to the backend");
        return lb;
    }

    private static async Task<bool> TryEchoAsync(int port, string word)
    {
        try
        {
            using var socket = await RawHttp.OpenAsync(port);
            var answers = await RawHttp.ExchangeAsync(
                socket, $"GET /echo/{word} HTTP/1.1\r\nHost: hello.test\r\n\r\n", 1, readDelay: TimeSpan.Zero);
            return answers.Count == 1 && answers[0].Body.SequenceEqual(Encoding.ASCII.GetBytes(word));
        }
        catch (SocketException) { return false; }
    }

    /// <summary>/big, then /echo/after in the same packet, read slowly at first: the body whole, then the small answer.</summary>
    private static async Task BigThenSmallAsync(int port)
    {
        using var socket = await RawHttp.OpenAsync(port, receiveBuffer: 16 * 1024);
        var answers = await RawHttp.ExchangeAsync(socket,
            "GET /big HTTP/1.1\r\nHost: hello.test\r\n\r\nGET /echo/after HTTP/1.1\r\nHost: hello.test\r\n\r\n", 2,
            readDelay: TimeSpan.FromMilliseconds(2));
        Assert.Equal(2, answers.Count);
        Assert.Equal(200, answers[0].Status);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(Big)), Convert.ToHexString(SHA256.HashData(answers[0].Body)));
        Assert.Equal("after", Encoding.ASCII.GetString(answers[1].Body));
    }

    /// <summary>64 GETs in one write: 64 answers, each the echo of its own request, in order.</summary>
    private static async Task PipelinedAsync(int port)
    {
        using var socket = await RawHttp.OpenAsync(port);
        var requests = string.Concat(Enumerable.Range(0, 64).Select(i => $"GET /echo/n{i} HTTP/1.1\r\nHost: hello.test\r\n\r\n"));
        var answers = await RawHttp.ExchangeAsync(socket, requests, 64, readDelay: TimeSpan.Zero);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => $"n{i}"), answers.Select(a => Encoding.ASCII.GetString(a.Body)));
    }

    /// <summary>The process's io_uring receives and sends so far (eru_lb_io_uring_operations_total by op).</summary>
    private static async Task<(double Receives, double Sends)> RingOpsAsync(int opsPort)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{opsPort}/metrics");
        double Of(string op) => text.Split('\n')
            .Where(l => l.StartsWith($"eru_lb_io_uring_operations_total{{op=\"{op}\"}} ", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)).SingleOrDefault();
        return (Of("receive"), Of("send"));
    }
}
