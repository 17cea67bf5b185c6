using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Ssh.Tests;

/// <summary>Our server against the real OpenSSH client, forcing each algorithm in turn.</summary>
public sealed class OpenSshTests : IAsyncLifetime, IDisposable
{
    private readonly ILoggerFactory _logs;
    private readonly TestSshServer _server;
    private readonly OpenSshClient _client = new();
    private string _key = "";

    public OpenSshTests(ITestOutputHelper output)
    {
        _logs = XunitLoggerProvider.Factory(output);
        _server = new TestSshServer(_logs);
    }

    public async Task InitializeAsync()
    {
        _key = await _client.KeyAsync("ed25519", "id_ed25519");
        _server.Handler.Allow("tester", OpenSshClient.PublicKeyLine(_key));
        _client.TrustHost(_server.Port, _server.HostKeyLines);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose()
    {
        _client.Dispose();
        _logs.Dispose();
    }

    private Task<OpenSshClient.Result> Ssh(string command, params string[] options) =>
        _client.RunAsync(_server.Port, "tester", _key, command, options);

    private static void Ok(OpenSshClient.Result r, string stdout)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        Assert.Equal(stdout, r.Text);
    }

    [Theory]
    [InlineData("curve25519-sha256")]
    [InlineData("curve25519-sha256@libssh.org")]
    [InlineData("ecdh-sha2-nistp256")]
    public async Task Each_key_exchange(string kex)
    {
        Ok(await Ssh("echo hi", "KexAlgorithms=" + kex), "hi\n");
        Assert.Contains(_server.Handler.Events, e => e.Contains($"via {kex} "));
    }

    [Theory]
    [InlineData("ssh-ed25519")]
    [InlineData("ecdsa-sha2-nistp256")]
    [InlineData("rsa-sha2-256")]
    [InlineData("rsa-sha2-512")]
    public async Task Each_host_key_algorithm_with_strict_host_key_checking(string alg)
    {
        Ok(await Ssh("echo hi", "HostKeyAlgorithms=" + alg), "hi\n");
        Assert.Contains(_server.Handler.Events, e => e.Contains($" {alg} "));
    }

    [Theory]
    [InlineData("chacha20-poly1305@openssh.com", null)]
    [InlineData("aes128-gcm@openssh.com", null)]
    [InlineData("aes256-gcm@openssh.com", null)]
    [InlineData("aes256-ctr", "hmac-sha2-256-etm@openssh.com")]
    [InlineData("aes256-ctr", "hmac-sha2-256")]
    [InlineData("aes128-ctr", "hmac-sha2-512-etm@openssh.com")]
    [InlineData("aes256-ctr", "hmac-sha2-512")]
    public async Task Each_cipher_and_mac(string cipher, string? mac)
    {
        string[] options = mac is null ? ["Ciphers=" + cipher] : ["Ciphers=" + cipher, "MACs=" + mac];
        var data = RandomNumberGenerator.GetBytes(300_000);
        var r = await _client.RunAsync(_server.Port, "tester", _key, "cat", options, data);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(data, r.Stdout);
        Assert.Contains(_server.Handler.Events, e => e.Contains($" {cipher}/{mac ?? "aead"} "));
    }

    [Theory]
    [InlineData("ed25519", "ssh-ed25519")]
    [InlineData("ecdsa", "ecdsa-sha2-nistp256")]
    [InlineData("rsa", "rsa-sha2-512")]
    public async Task Each_user_key_type(string type, string algorithm)
    {
        var key = await _client.KeyAsync(type, "user_" + type);
        _server.Handler.Allow("typed", OpenSshClient.PublicKeyLine(key));
        var r = await _client.RunAsync(_server.Port, "typed", key, "echo in");
        Ok(r, "in\n");
        Assert.Contains($"accepted typed {SshPublicKeyType(type)} {algorithm}", _server.Handler.Events);
    }

    private static string SshPublicKeyType(string t) => t switch
    {
        "ed25519" => "ssh-ed25519",
        "ecdsa" => "ecdsa-sha2-nistp256",
        _ => "ssh-rsa",
    };

    [Fact]
    public async Task Rsa_user_key_with_sha256_only()
    {
        var key = await _client.KeyAsync("rsa", "user_rsa");
        _server.Handler.Allow("typed", OpenSshClient.PublicKeyLine(key));
        Ok(await _client.RunAsync(_server.Port, "typed", key, "echo in", ["PubkeyAcceptedAlgorithms=rsa-sha2-256"]), "in\n");
        Assert.Contains("accepted typed ssh-rsa rsa-sha2-256", _server.Handler.Events);
    }

    [Fact]
    public async Task Unregistered_key_and_unknown_user_are_refused()
    {
        var other = await _client.KeyAsync("ed25519", "other");
        var r = await _client.RunAsync(_server.Port, "tester", other, "echo no");
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("Permission denied (publickey)", r.Stderr);
        var u = await _client.RunAsync(_server.Port, "nobody", _key, "echo no");
        Assert.Equal(255, u.ExitCode);
        Assert.Contains("Permission denied", u.Stderr);
        Assert.DoesNotContain(_server.Handler.Events, e => e.StartsWith("session", StringComparison.Ordinal));
        Assert.Contains("failed tester key not registered", _server.Handler.Events); // refused queries are reported too
        Assert.Contains("failed nobody key not registered", _server.Handler.Events);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(255)]
    public async Task Exit_codes_come_through(int code)
    {
        var r = await Ssh($"exit {code}");
        Assert.Equal(code, r.ExitCode);
    }

    [Fact]
    public async Task Death_by_signal_is_reported()
    {
        var r = await Ssh("kill");
        Assert.Equal(137, r.ExitCode); // 128 + SIGKILL, as a shell reports it
    }

    [Fact]
    public async Task Stdin_eof_ends_cat()
    {
        var r = await _client.RunAsync(_server.Port, "tester", _key, "cat", stdin: "hi\n"u8.ToArray());
        Ok(r, "hi\n");
    }

    [Fact]
    public async Task Stderr_is_separate()
    {
        var r = await Ssh("stderr oops");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Text);
        Assert.Contains("oops", r.Stderr);
    }

    [Fact]
    public async Task Pty_request_carries_term_and_env_is_passed()
    {
        var r = await _client.RunAsync(_server.Port, "tester", _key, "pty", ["SetEnv=TERM=vt220"], tty: true);
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("vt220 ", r.Text);
        var env = await Ssh("env", "SetEnv=LANG=C.UTF-8 FOO=bar");
        Ok(env, "FOO=bar,LANG=C.UTF-8\n");
    }

    [Fact]
    public async Task Twenty_megabytes_each_way_with_rekeying_forced_by_the_client()
    {
        var data = RandomNumberGenerator.GetBytes(20 << 20);
        var r = await _client.RunAsync(_server.Port, "tester", _key, "sha256", ["RekeyLimit=64K"], data, timeout: TimeSpan.FromMinutes(3));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal($"{data.Length} {Convert.ToHexStringLower(SHA256.HashData(data))}\n", r.Text);

        var down = await _client.RunAsync(_server.Port, "tester", _key, $"bytes {20 << 20}", ["RekeyLimit=64K"],
            timeout: TimeSpan.FromMinutes(3));
        Assert.True(down.ExitCode == 0, down.Stderr);
        Assert.Equal(20 << 20, down.Stdout.Length);
        var pattern = TestHandler.Pattern(64 * 1024);
        for (var i = 0; i < down.Stdout.Length; i += pattern.Length)
            Assert.True(down.Stdout.AsSpan(i, pattern.Length).SequenceEqual(pattern));
        await Eventually.True(() => _server.Handler.Closed.Count == 2, TimeSpan.FromSeconds(10), "both connections closed on the server");
        Assert.All(_server.Handler.Closed, c => Assert.True(c.KeyExchanges > 10, $"only {c.KeyExchanges} key exchanges"));
    }

    [Fact]
    public async Task Garbage_instead_of_a_version_string_is_answered_and_the_server_stays_up()
    {
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync("127.0.0.1", _server.Port);
            var s = tcp.GetStream();
            await s.WriteAsync("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"u8.ToArray());
            var all = new MemoryStream();
            await s.CopyToAsync(all).WaitAsync(TimeSpan.FromSeconds(10)); // the server closes after its banner
            Assert.StartsWith("SSH-2.0-EdgeEru", Encoding.ASCII.GetString(all.ToArray()));
        }
        Ok(await Ssh("echo still"), "still\n");
    }

    [Fact]
    public async Task Shell_session_reads_lines_until_exit()
    {
        var r = await _client.RunAsync(_server.Port, "tester", _key, null, stdin: "hello\nexit\n"u8.ToArray());
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("ready\r\nsaid hello\r\n", r.Text);
    }

    [Fact]
    public async Task Keepalives_are_answered_and_forwarding_is_refused()
    {
        // The client gives up after 2 unanswered keepalives a second apart; the command takes 3.5 s.
        Ok(await Ssh("sleep 3500", "ServerAliveInterval=1", "ServerAliveCountMax=2"), "slept\n");

        var remote = await Ssh("echo no", "ExitOnForwardFailure=yes", $"RemoteForward=127.0.0.1:{EdgeEru.Dev.Ports.FreeTcp()} 127.0.0.1:9");
        Assert.Equal(255, remote.ExitCode);
        Assert.Contains("remote port forwarding failed", remote.Stderr);
        // Agent forwarding is asked for and refused; the session goes on.
        Ok(await Ssh("echo agentless", "ForwardAgent=yes"), "agentless\n");
    }

    [Fact]
    public async Task Several_channels_run_at_once_on_one_connection()
    {
        using var client = new Renci.SshNet.SshClient("127.0.0.1", _server.Port, "tester", new Renci.SshNet.PrivateKeyFile(_key));
        client.Connect();
        var commands = Enumerable.Range(1, 5).Select(i => Task.Run(() =>
        {
            using var cmd = client.CreateCommand($"sleep {200 * i}");
            var output = cmd.Execute();
            return (output, cmd.ExitStatus);
        })).ToList();
        foreach (var c in commands)
        {
            var (output, status) = await c;
            Assert.Equal("slept\n", output);
            Assert.Equal(0, status);
        }
        using var exit = client.CreateCommand("exit 5");
        exit.Execute();
        Assert.Equal(5, exit.ExitStatus);
        client.Disconnect();
    }
}
