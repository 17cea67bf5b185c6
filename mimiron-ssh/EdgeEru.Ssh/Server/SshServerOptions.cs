using EdgeEru.Ssh.Crypto;
using EdgeEru.Ssh.Kex;
using EdgeEru.Ssh.Keys;

namespace EdgeEru.Ssh.Server;

/// <summary>
/// What an SSH server offers and its limits. The algorithm lists are in preference order and may be narrowed, never extended.
/// </summary>
public sealed class SshServerOptions
{
    public required IReadOnlyList<HostKey> HostKeys { get; init; }

    /// <summary>The softwareversion part of the identification string (RFC 4253 §4.2).</summary>
    public string SoftwareVersion { get; init; } = "EdgeEru_1.0";

    public IReadOnlyList<string> KexAlgorithms { get; init; } = KeyExchangeMethod.Names;
    public IReadOnlyList<string> Ciphers { get; init; } = CipherInfo.Supported.Select(c => c.Name).ToArray();
    public IReadOnlyList<string> Macs { get; init; } = MacInfo.Supported.Select(m => m.Name).ToArray();

    /// <summary>We start a new key exchange after this many bytes in either direction (RFC 4253 §9 recommends 1 GiB).</summary>
    public long RekeyBytes { get; init; } = 1L << 30;

    /// <summary>... or after this long with the same keys.</summary>
    public TimeSpan RekeyInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Time from connect to successful authentication before we disconnect.</summary>
    public TimeSpan LoginGraceTime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Failed authentication attempts (signed public key tries) per connection before we disconnect.</summary>
    public int MaxAuthTries { get; init; } = 6;

    /// <summary>The window we grant for each channel, and the largest data packet we accept.</summary>
    public uint ChannelWindow { get; init; } = 2 * 1024 * 1024;
    public uint ChannelMaxPacket { get; init; } = 32 * 1024;

    /// <summary>Channels one connection may have open at once.</summary>
    public int MaxChannels { get; init; } = 10;
}
