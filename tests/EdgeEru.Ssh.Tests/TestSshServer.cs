using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Ssh.Connection;
using EdgeEru.Ssh.Keys;
using EdgeEru.Ssh.Server;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Ssh.Tests;

/// <summary>
/// Our SSH server on a loopback port with a test session handler (before Docker is wired): commands
/// <c>echo TEXT</c>, <c>exit N</c>, <c>cat</c>, <c>stderr TEXT</c>, <c>bytes N</c>, <c>sha256</c> (of stdin), <c>pty</c>, <c>kill</c>,
/// and a line shell that answers <c>size</c> and <c>exit</c>.
/// </summary>
public sealed class TestSshServer : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-ssh-server-").FullName;
    private readonly SshServer _server;

    public TestSshServer(ILoggerFactory logs, Func<SshServerOptions, SshServerOptions>? configure = null)
    {
        HostKeys = HostKeyStore.LoadOrCreate(_dir);
        var options = new SshServerOptions { HostKeys = HostKeys };
        Options = configure?.Invoke(options) ?? options;
        _server = new SshServer(new IPEndPoint(IPAddress.Loopback, 0), Options, Handler, logs.CreateLogger("ssh"));
        _server.Start();
    }

    public IReadOnlyList<HostKey> HostKeys { get; }
    public SshServerOptions Options { get; }
    public TestHandler Handler { get; } = new();
    public int Port => _server.LocalEndPoint.Port;
    public int ConnectionCount => _server.ConnectionCount;
    public IEnumerable<string> HostKeyLines => HostKeys.Select(k => k.PublicKey.ToOpenSsh());

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        foreach (var k in HostKeys) k.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

public sealed class TestHandler : SshServerHandler
{
    /// <summary>user → keys that may log in.</summary>
    public ConcurrentDictionary<string, List<SshPublicKey>> Users { get; } = new();
    public ConcurrentQueue<string> Events { get; } = new();
    /// <summary>Users whose keys pass a query but are refused once signed.</summary>
    public HashSet<string> QueryOnlyUsers { get; } = [];
    public ConcurrentQueue<SshConnectionInfo> Closed { get; } = new();

    public void Allow(string user, string authorizedKeyLine) =>
        Users.GetOrAdd(user, _ => []).Add(SshPublicKey.ParseAuthorizedKey(authorizedKeyLine).Key);

    public override ValueTask<AuthDecision> AuthorizeAsync(SshAuthRequest request, CancellationToken ct)
    {
        if (QueryOnlyUsers.Contains(request.User))
            return ValueTask.FromResult(request.Signed ? AuthDecision.Refuse("query only") : AuthDecision.Accept());
        var ok = Users.TryGetValue(request.User, out var keys) && keys.Contains(request.Key);
        if (request.Signed) Events.Enqueue($"{(ok ? "accepted" : "refused")} {request.User} {request.Key.KeyType} {request.Algorithm}");
        return ValueTask.FromResult(ok ? AuthDecision.Accept(request.User) : AuthDecision.Refuse("key not registered"));
    }

    public override void OnAuthFailed(SshConnectionInfo connection, string user, SshPublicKey? key, string reason) =>
        Events.Enqueue($"failed {user} {reason}");

    public ConcurrentQueue<string> CloseErrors { get; } = new();

    public override void OnConnectionClosed(SshConnectionInfo connection, Exception? error)
    {
        if (error is not null) CloseErrors.Enqueue(error.Message);
        Closed.Enqueue(connection);
    }

    public override async Task<SessionExit> RunSessionAsync(SshSession session, CancellationToken ct)
    {
        Events.Enqueue($"session {session.Connection.User} {session.Command ?? "shell"} via {session.Connection.Algorithms}");
        if (session.IsShell) return await ShellAsync(session, ct);
        var command = session.Command!;
        var arg = command.Contains(' ') ? command[(command.IndexOf(' ') + 1)..] : "";
        switch (command.Split(' ')[0])
        {
            case "echo":
                await session.Output.WriteAsync(Encoding.UTF8.GetBytes(arg + "\n"), ct);
                return SessionExit.Exited(0);
            case "stderr":
                await session.Error.WriteAsync(Encoding.UTF8.GetBytes(arg + "\n"), ct);
                return SessionExit.Exited(1);
            case "exit":
                return SessionExit.Exited(int.Parse(arg, System.Globalization.CultureInfo.InvariantCulture));
            case "sleep":
                await Task.Delay(TimeSpan.FromMilliseconds(int.Parse(arg, System.Globalization.CultureInfo.InvariantCulture)), ct);
                await session.Output.WriteAsync("slept\n"u8.ToArray(), ct);
                return SessionExit.Exited(0);
            case "kill":
                return SessionExit.Killed(9);
            case "cat":
                await session.Input.CopyToAsync(session.Output, ct);
                return SessionExit.Exited(0);
            case "sha256":
            {
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buf = new byte[64 * 1024];
                long total = 0;
                int n;
                while ((n = await session.Input.ReadAsync(buf, ct)) > 0)
                {
                    sha.AppendData(buf, 0, n);
                    total += n;
                }
                await session.Output.WriteAsync(Encoding.UTF8.GetBytes($"{total} {Convert.ToHexStringLower(sha.GetHashAndReset())}\n"), ct);
                return SessionExit.Exited(0);
            }
            case "bytes":
            {
                var total = long.Parse(arg, System.Globalization.CultureInfo.InvariantCulture);
                var block = Pattern(64 * 1024);
                for (long sent = 0; sent < total; sent += block.Length)
                    await session.Output.WriteAsync(block.AsMemory(0, (int)Math.Min(block.Length, total - sent)), ct);
                return SessionExit.Exited(0);
            }
            case "pty":
                await session.Output.WriteAsync(
                    Encoding.UTF8.GetBytes(session.Pty is { } p ? $"{p.Term} {p.Size.Columns}x{p.Size.Rows}\n" : "no pty\n"), ct);
                return SessionExit.Exited(0);
            case "env":
                await session.Output.WriteAsync(Encoding.UTF8.GetBytes(
                    string.Join(",", session.Environment.OrderBy(e => e.Key).Select(e => $"{e.Key}={e.Value}")) + "\n"), ct);
                return SessionExit.Exited(0);
            default:
                await session.Error.WriteAsync(Encoding.UTF8.GetBytes($"unknown command {command}\n"), ct);
                return SessionExit.Exited(127);
        }
    }

    public static byte[] Pattern(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 7 + i / 251)).ToArray();

    private static async Task<SessionExit> ShellAsync(SshSession session, CancellationToken ct)
    {
        var size = session.Pty?.Size;
        using var reader = new StreamReader(session.Input);
        await session.Output.WriteAsync("ready\r\n"u8.ToArray(), ct);
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            while (session.Resizes.TryRead(out var s)) size = s;
            switch (line.Trim())
            {
                case "size":
                    await session.Output.WriteAsync(Encoding.UTF8.GetBytes($"size {size?.Columns}x{size?.Rows}\r\n"), ct);
                    break;
                case "exit":
                    return SessionExit.Exited(0);
                default:
                    await session.Output.WriteAsync(Encoding.UTF8.GetBytes($"said {line.Trim()}\r\n"), ct);
                    break;
            }
        }
        return SessionExit.Exited(0);
    }
}
