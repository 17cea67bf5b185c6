using System.Net.Sockets;
using System.Security.Cryptography;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Ssh.Tests;

/// <summary>Limits the server enforces itself: rekeying by us, login grace time, authentication attempts.</summary>
public sealed class ServerLimitsTests(ITestOutputHelper output) : IDisposable
{
    private readonly ILoggerFactory _logs = XunitLoggerProvider.Factory(output);
    private readonly OpenSshClient _client = new();

    public void Dispose()
    {
        _client.Dispose();
        _logs.Dispose();
    }

    [Fact]
    public async Task The_server_rekeys_after_its_byte_limit_during_a_transfer()
    {
        await using var server = new TestSshServer(_logs, o => new() { HostKeys = o.HostKeys, RekeyBytes = 256 * 1024 });
        var key = await _client.KeyAsync("ed25519", "id");
        server.Handler.Allow("tester", OpenSshClient.PublicKeyLine(key));
        _client.TrustHost(server.Port, server.HostKeyLines);
        var data = RandomNumberGenerator.GetBytes(4 << 20);
        var r = await _client.RunAsync(server.Port, "tester", key, "cat", stdin: data);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(data, r.Stdout);
        await Eventually.True(() => !server.Handler.Closed.IsEmpty, TimeSpan.FromSeconds(10), "connection closed on the server");
        Assert.True(server.Handler.Closed.Single().KeyExchanges >= 4, $"{server.Handler.Closed.Single().KeyExchanges} key exchanges");
    }

    [Fact]
    public async Task A_client_that_never_logs_in_is_dropped_after_the_grace_time()
    {
        await using var server = new TestSshServer(_logs, o => new() { HostKeys = o.HostKeys, LoginGraceTime = TimeSpan.FromSeconds(1) });
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", server.Port);
        await tcp.GetStream().WriteAsync("SSH-2.0-Idle\r\n"u8.ToArray());
        var sink = new MemoryStream();
        await tcp.GetStream().CopyToAsync(sink).WaitAsync(TimeSpan.FromSeconds(10)); // ends when the server closes
        await Eventually.True(() => server.ConnectionCount == 0, TimeSpan.FromSeconds(5), "no connections left");
    }

    [Fact]
    public async Task Too_many_failed_attempts_end_the_connection()
    {
        await using var server = new TestSshServer(_logs, o => new() { HostKeys = o.HostKeys, MaxAuthTries = 2 });
        _client.TrustHost(server.Port, server.HostKeyLines);
        var keys = new List<string>();
        for (var i = 0; i < 3; i++) keys.Add(await _client.KeyAsync("ed25519", "k" + i));
        // OpenSSH signs only after a PK_OK: this user's keys pass the query and fail once signed, so each key is a failed attempt.
        server.Handler.QueryOnlyUsers.Add("flaky");
        var r = await _client.RunAsync(server.Port, "flaky", keys[0], "echo no", keys.Skip(1).Select(k => "IdentityFile=" + k));
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("too many authentication failures", r.Stderr);
        Assert.Equal(2, server.Handler.Events.Count(e => e.StartsWith("failed flaky", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(true, "strict key exchange: KEXINIT was not the first packet")]
    [InlineData(false, null)]
    public async Task Strict_kex_refuses_anything_before_kexinit(bool strict, string? expected)
    {
        await using var server = new TestSshServer(_logs);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", server.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync("SSH-2.0-Probe\r\n"u8.ToArray());
        var writer = new Transport.PacketWriter(stream);
        writer.Frame([Wire.MessageNumber.Ignore, 0, 0, 0, 0]); // what a Terrapin attacker would inject
        string[] kex = strict ? ["curve25519-sha256", "kex-strict-c-v00@openssh.com"] : ["curve25519-sha256"];
        writer.Frame(new Kex.KexInit(kex, ["ssh-ed25519"], ["aes128-gcm@openssh.com"], ["aes128-gcm@openssh.com"], ["hmac-sha2-256"],
            ["hmac-sha2-256"], ["none"], ["none"], false).Encode());
        await writer.FlushAsync(default);
        if (strict)
        {
            await stream.CopyToAsync(Stream.Null).WaitAsync(TimeSpan.FromSeconds(10)); // the server hangs up
            await Eventually.True(() => !server.Handler.CloseErrors.IsEmpty, TimeSpan.FromSeconds(5), "the server's reason");
            Assert.Contains(expected!, server.Handler.CloseErrors);
        }
        else
        {
            // Without strict kex an IGNORE first is fine: the server goes on to wait for our KEX_ECDH_INIT.
            var reader = new Transport.PacketReader(stream);
            Assert.StartsWith("SSH-2.0-EdgeEru", await reader.ReadIdentificationAsync(default));
            Assert.Equal(Wire.MessageNumber.KexInit, (await reader.ReadPacketAsync(default)).Span[0]);
            await Task.Delay(300);
            Assert.Empty(server.Handler.CloseErrors);
        }
    }
}
