using System.Net;
using EdgeEru.Ssh.Connection;
using EdgeEru.Ssh.Keys;

namespace EdgeEru.Ssh.Server;

/// <summary>What the server knows about one connection.</summary>
public sealed class SshConnectionInfo
{
    public required long Id { get; init; }
    public required EndPoint? RemoteEndPoint { get; init; }
    public string ClientVersion { get; internal set; } = "";
    /// <summary>Negotiated algorithms of the last key exchange.</summary>
    public string? Algorithms { get; internal set; }
    public int KeyExchanges { get; internal set; }
    /// <summary>Set once authentication succeeded.</summary>
    public string? User { get; internal set; }
    public SshPublicKey? Key { get; internal set; }
    /// <summary>What the handler attached when it accepted the login (e.g. the resolved target).</summary>
    public object? Principal { get; internal set; }
}

/// <summary>
/// A public key login attempt. <see cref="Signed"/> is false for a query ("would this key do?") and true once the signature checked out.
/// </summary>
public sealed record SshAuthRequest(SshConnectionInfo Connection, string User, SshPublicKey Key, string Algorithm, bool Signed);

/// <summary>The answer to a login attempt: accepted (with what to remember about the user) or refused with a reason for logs.</summary>
public sealed record AuthDecision(bool Accepted, object? Principal, string? Reason)
{
    public static AuthDecision Accept(object? principal = null) => new(true, principal, null);
    public static AuthDecision Refuse(string reason) => new(false, null, reason);
}

/// <summary>How a session ended: its exit status (a death by signal n is 128+n, as a shell reports it).</summary>
public readonly record struct SessionExit(int Code)
{
    public static SessionExit Exited(int code) => new(code);
    public static SessionExit Killed(int signal) => new(128 + signal);
}

/// <summary>The application behind the server: who may log in, and what a session does.</summary>
public abstract class SshServerHandler
{
    /// <summary>Decides a login. Must have no side effects for queries (<see cref="SshAuthRequest.Signed"/> false).</summary>
    public abstract ValueTask<AuthDecision> AuthorizeAsync(SshAuthRequest request, CancellationToken ct);

    /// <summary>A login attempt failed (bad signature, refused key, unsupported method); for audit.</summary>
    public virtual void OnAuthFailed(SshConnectionInfo connection, string user, SshPublicKey? key, string reason) { }

    /// <summary>Runs a shell, exec or subsystem session until it ends.</summary>
    public abstract Task<SessionExit> RunSessionAsync(SshSession session, CancellationToken ct);

    /// <summary>Whether a subsystem (e.g. sftp) is offered.</summary>
    public virtual bool SupportsSubsystem(SshConnectionInfo connection, string name) => false;

    public virtual void OnConnectionClosed(SshConnectionInfo connection, Exception? error) { }
}
