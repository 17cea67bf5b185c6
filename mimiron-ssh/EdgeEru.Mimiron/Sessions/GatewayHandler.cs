using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using EdgeEru.Mimiron.Audit;
using EdgeEru.Mimiron.Docker;
using EdgeEru.Mimiron.Targets;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Ssh.Connection;
using EdgeEru.Ssh.Keys;
using EdgeEru.Ssh.Server;

namespace EdgeEru.Mimiron.Sessions;

/// <summary>What a login carries from authentication to its sessions.</summary>
public sealed record GatewayPrincipal(LoginName Login);

/// <summary>
/// The gateway's policy over the SSH server: a login is <c>user~target</c>, accepted when the user exists in the
/// registry snapshot and the key is one of theirs; each session then resolves the target among live instances,
/// checks the user's access to its app and runs through Docker exec. Every decision is audited.
/// </summary>
public sealed class GatewayHandler(Func<RegistrySnapshot> snapshot, ExecRunner exec, AuditLog audit, GatewayMetrics metrics,
    GatewayOptions options, ILogger<GatewayHandler> log) : SshServerHandler
{
    private readonly ConditionalWeakTable<SshUser, HashSet<SshPublicKey>> _keys = [];
    private readonly ConcurrentDictionary<string, int> _sessionsPerUser = new(StringComparer.Ordinal);
    private readonly SshPublicKey[] _cas = options.UserCaKeys.Select(l => SshPublicKey.ParseAuthorizedKey(l).Key).ToArray();

    /// <summary>Why this key may not log in as the user now (null: it may): a listed key, or a certificate from a trusted CA.</summary>
    private string? KeyProblem(SshUser user, SshPublicKey key, System.Net.EndPoint? remote)
    {
        if (key.Certificate is not { } cert) return KeysOf(user).Contains(key) ? null : "key not registered for the user";
        return cert.Check(_cas, user.Name, DateTimeOffset.UtcNow, (remote as System.Net.IPEndPoint)?.Address);
    }

    private HashSet<SshPublicKey> KeysOf(SshUser user) => _keys.GetValue(user, u =>
    {
        var set = new HashSet<SshPublicKey>();
        foreach (var line in u.Keys)
        {
            try
            {
                set.Add(SshPublicKey.ParseAuthorizedKey(line).Key);
            }
            catch (FormatException e)
            {
                log.LogWarning("ssh user {User}: a key is unusable: {Error}", u.Name, e.Message);
            }
        }
        return set;
    });

    public override ValueTask<AuthDecision> AuthorizeAsync(SshAuthRequest request, CancellationToken ct)
    {
        var login = LoginName.Parse(request.User, out var problem);
        if (login is null) return ValueTask.FromResult(AuthDecision.Refuse(problem!));
        if (!snapshot().SshUsers.TryGetValue(login.User, out var user))
            return ValueTask.FromResult(AuthDecision.Refuse($"no ssh user {login.User}"));
        if (KeyProblem(user, request.Key, request.Connection.RemoteEndPoint) is { } keyProblem)
            return ValueTask.FromResult(AuthDecision.Refuse(keyProblem));
        if (request.Signed)
        {
            metrics.Logins.WithLabels("accepted").Inc();
            var cert = request.Key.Certificate;
            audit.Write("login_accepted", ("user", login.User), ("target", login.Target), ("key", Fingerprint(request.Key)),
                ("key_type", request.Key.KeyType), ("cert_id", cert?.KeyId), ("cert_serial", cert is null ? null : (long)cert.Serial),
                ("ca", cert?.SignatureKey.Fingerprint), ("remote", request.Connection.RemoteEndPoint?.ToString()),
                ("client", request.Connection.ClientVersion));
        }
        return ValueTask.FromResult(AuthDecision.Accept(new GatewayPrincipal(login)));
    }

    /// <summary>sftp (and scp, which speaks SFTP since OpenSSH 9) runs the container's own sftp-server.</summary>
    public override bool SupportsSubsystem(SshConnectionInfo connection, string name) => name == "sftp";

    public override void OnAuthFailed(SshConnectionInfo connection, string user, SshPublicKey? key, string reason)
    {
        metrics.Logins.WithLabels("refused").Inc();
        audit.Write("login_refused", ("login", LoginName.Printable(user)), ("key", key is null ? null : Fingerprint(key)),
            ("cert_id", key?.Certificate?.KeyId), ("reason", reason), ("remote", connection.RemoteEndPoint?.ToString()),
            ("client", connection.ClientVersion));
    }

    public override async Task<SessionExit> RunSessionAsync(SshSession session, CancellationToken ct)
    {
        var login = ((GatewayPrincipal)session.Connection.Principal!).Login;
        var snap = snapshot();
        async Task<SessionExit> Refuse(string message, string reason)
        {
            metrics.Sessions.WithLabels("refused").Inc();
            audit.Write("session_refused", ("user", login.User), ("target", login.Target), ("command", session.Command),
                ("reason", reason));
            await session.Error.WriteAsync(Encoding.UTF8.GetBytes(message.EndsWith('\n') ? message : message + "\n"), ct);
            return SessionExit.Exited(1);
        }

        // The user may have been removed or changed since the login: the current snapshot decides.
        if (!snap.SshUsers.TryGetValue(login.User, out var user)
            || KeyProblem(user, session.Connection.Key!, session.Connection.RemoteEndPoint) is not null)
            return await Refuse($"eru-ssh: {login.User} may no longer log in", "user, key or certificate no longer valid");
        if (login.Target is null)
            return await Refuse(TargetResolver.Reachable(snap, user), "no target");
        var target = TargetResolver.Resolve(snap, login.Target, out var problem);
        if (target is null) return await Refuse($"eru-ssh: {problem}", problem!);
        var app = target.Workload.App;
        if (user.AccessTo(app) is not { } access)
            return await Refuse($"eru-ssh: {login.User} may not enter app {app}", $"app {app} not allowed");
        if (session.IsShell && !access.Shell && session.Connection.Key?.Certificate?.ForceCommand is null)
            return await Refuse($"eru-ssh: {login.User} may only run commands in app {app}: ssh {login.User}~{login.Target} COMMAND",
                "shell not allowed");

        var count = _sessionsPerUser.AddOrUpdate(login.User, 1, (_, n) => n + 1);
        try
        {
            if (count > options.MaxSessionsPerUser)
                return await Refuse($"eru-ssh: {login.User} already has {options.MaxSessionsPerUser} sessions open", "too many sessions");
            // An instance the gateway chose that cannot take the session (its engine away, its container paused or
            // gone since the snapshot) is passed over for the next one: the user asked for any of them.
            foreach (var choice in target.Others)
            {
                if (await RunAsync(session, login, target, access, lastChoice: false, ct) is { } exit) return exit;
                target = choice;
            }
            return (await RunAsync(session, login, target, access, lastChoice: true, ct)).GetValueOrDefault();
        }
        finally
        {
            _sessionsPerUser.AddOrUpdate(login.User, 0, (_, n) => n - 1);
        }
    }

    /// <summary>Runs the session in <paramref name="target"/>; null when nothing ran there and another choice is left.</summary>
    private async Task<SessionExit?> RunAsync(
        SshSession session, LoginName login, ResolvedTarget target, SshAppAccess access, bool lastChoice, CancellationToken ct)
    {
        var w = target.Workload;
        using var recorder = options.RecordDirectory.Length == 0 ? null : StartRecording(session, login, w);
        audit.Write("session_start", ("user", login.User), ("target", login.Target), ("workload", w.Id), ("ident", w.Ident), ("app", w.App),
            ("entrypoint", w.Entrypoint), ("node", w.Node), ("command", session.Command), ("subsystem", session.Subsystem),
            ("tty", session.Pty is not null), ("container_user", access.User), ("recording", recorder?.Path),
            ("key", session.Connection.Key is null ? null : Fingerprint(session.Connection.Key)));
        metrics.ActiveSessions.Inc();
        var started = Stopwatch.GetTimestamp();
        using var maxLength = options.MaxSessionSeconds > 0
            ? new CancellationTokenSource(TimeSpan.FromSeconds(options.MaxSessionSeconds))
            : new CancellationTokenSource();
        using var limits = CancellationTokenSource.CreateLinkedTokenSource(ct, maxLength.Token);
        var lastActivity = Stopwatch.GetTimestamp();
        var idleFired = false;
        var idle = options.IdleTimeoutSeconds > 0
            ? WatchIdleAsync(() => Interlocked.Read(ref lastActivity), TimeSpan.FromSeconds(options.IdleTimeoutSeconds), limits,
                () => idleFired = true)
            : Task.CompletedTask;
        ExecResult result;
        try
        {
            result = await exec.RunAsync(session, target, access, Command(session),
                () => Interlocked.Exchange(ref lastActivity, Stopwatch.GetTimestamp()), recorder, limits.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            result = new ExecResult(255, 0, 0, null, Interrupted: true);
        }
        finally
        {
            metrics.ActiveSessions.Dec();
            await limits.CancelAsync();
            await idle;
        }
        if (result.Interrupted)
        {
            // Cut short: by a limit (the client is told), or because the client went away (nobody to tell).
            var limited = !ct.IsCancellationRequested && (idleFired || maxLength.IsCancellationRequested);
            result = result with
            {
                ExitCode = limited ? 1 : 255,
                Problem = limited
                    ? "session ended: "
                        + (idleFired ? $"idle for {options.IdleTimeoutSeconds} s" : $"longer than {options.MaxSessionSeconds} s")
                    : null,
            };
        }
        if (result.NotStarted && !lastChoice)
        {
            metrics.Sessions.WithLabels("passed_over").Inc();
            audit.Write("session_passed_over", ("user", login.User), ("workload", w.Id), ("ident", w.Ident), ("node", w.Node),
                ("problem", result.Problem));
            return null;
        }
        if (result.Problem is not null)
        {
            try
            {
                await session.Error.WriteAsync(Encoding.UTF8.GetBytes($"eru-ssh: {result.Problem}\n"), ct);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                // the client left
            }
        }
        var outcome = result.Interrupted
            ? result.Problem is null ? "client_left" : "limited"
            : result.Problem is null ? "completed" : "failed";
        metrics.Sessions.WithLabels(outcome).Inc();
        metrics.Bytes.WithLabels("in").Inc(result.BytesIn);
        metrics.Bytes.WithLabels("out").Inc(result.BytesOut);
        audit.Write("session_end", ("user", login.User), ("workload", w.Id), ("ident", w.Ident), ("node", w.Node),
            ("command", session.Command), ("exit_code", result.ExitCode), ("bytes_in", result.BytesIn), ("bytes_out", result.BytesOut),
            ("seconds", Stopwatch.GetElapsedTime(started).TotalSeconds), ("outcome", outcome), ("problem", result.Problem));
        return SessionExit.Exited(result.ExitCode);
    }

    // The places Debian, Alpine, Red Hat and OpenSSH's own install put sftp-server; the first present is run.
    private const string SftpServer =
        "for p in /usr/lib/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/openssh/sftp-server " +
        "/usr/libexec/sftp-server /usr/lib/sftp-server; " +
        "do [ -x \"$p\" ] && exec \"$p\"; done; echo 'eru-ssh: this container has no sftp-server' >&2; exit 127";

    /// <summary>
    /// What runs in the container: a certificate's force-command, sftp-server for the sftp subsystem, the command, or a login shell (null).
    /// </summary>
    private static string? Command(SshSession session) =>
        session.Connection.Key?.Certificate?.ForceCommand ?? (session.Subsystem == "sftp" ? SftpServer : session.Command);

    private AsciicastRecorder StartRecording(SshSession session, LoginName login, Workload w)
    {
        Directory.CreateDirectory(options.RecordDirectory);
        var name = $"{DateTimeOffset.UtcNow:yyyyMMddTHHmmssfffZ}-{login.User}-{w.Ident}-{Guid.NewGuid().ToString("N")[..6]}.cast";
        var size = session.Pty?.Size;
        return new AsciicastRecorder(Path.Combine(options.RecordDirectory, name), size?.Columns ?? 80, size?.Rows ?? 24, session.Pty?.Term,
            Command(session), $"{login.User}~{login.Target} on {w.App}.{w.Entrypoint} {w.Ident}@{w.Node}");
    }

    /// <summary>The fingerprint of the key that signs: a certificate's own key.</summary>
    private static string Fingerprint(SshPublicKey key) => (key.Certificate?.Key ?? key).Fingerprint;

    private static async Task WatchIdleAsync(Func<long> lastActivity, TimeSpan idle, CancellationTokenSource limits, Action fired)
    {
        try
        {
            while (!limits.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), limits.Token);
                if (Stopwatch.GetElapsedTime(lastActivity()) < idle) continue;
                fired();
                await limits.CancelAsync();
            }
        }
        catch (OperationCanceledException)
        {
            // the session ended
        }
    }
}
