namespace EdgeEru.Ssh.Wire;

/// <summary>Reason codes of SSH_MSG_DISCONNECT (RFC 4253 §11.1).</summary>
public enum DisconnectReason : uint
{
    HostNotAllowedToConnect = 1,
    ProtocolError = 2,
    KeyExchangeFailed = 3,
    MacError = 5,
    ServiceNotAvailable = 7,
    ProtocolVersionNotSupported = 8,
    ConnectionLost = 10,
    ByApplication = 11,
    TooManyConnections = 12,
    AuthCancelledByUser = 13,
    NoMoreAuthMethodsAvailable = 14,
}

/// <summary>The peer broke the protocol (or the bytes are not SSH): the connection is closed with this reason.</summary>
public sealed class SshProtocolException(string message, DisconnectReason reason = DisconnectReason.ProtocolError) : Exception(message)
{
    public DisconnectReason Reason { get; } = reason;
}
