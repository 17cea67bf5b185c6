using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Transport;

/// <summary>The peer sent SSH_MSG_DISCONNECT.</summary>
public sealed class SshDisconnectedException(DisconnectReason reason, string description)
    : Exception($"peer disconnected ({reason}): {description}")
{
    public DisconnectReason Reason { get; } = reason;
}
