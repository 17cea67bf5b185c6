using System.Security.Cryptography;

namespace EdgeEru.Ssh.Crypto;

/// <summary>An encryption algorithm by its SSH name: key and IV sizes, and whether it carries its own integrity (AEAD).</summary>
internal sealed record CipherInfo(string Name, int KeySize, int IvSize, bool IsAead)
{
    public static readonly IReadOnlyList<CipherInfo> Supported =
    [
        new("chacha20-poly1305@openssh.com", 64, 0, true),
        new("aes128-gcm@openssh.com", 16, 12, true),
        new("aes256-gcm@openssh.com", 32, 12, true),
        new("aes128-ctr", 16, 16, false),
        new("aes192-ctr", 24, 16, false),
        new("aes256-ctr", 32, 16, false),
    ];

    public static CipherInfo? Find(string name) => Supported.FirstOrDefault(c => c.Name == name);
}

/// <summary>A MAC algorithm by its SSH name.</summary>
internal sealed record MacInfo(string Name, HashAlgorithmName Hash, int KeySize, int Length, bool EncryptThenMac)
{
    public static readonly IReadOnlyList<MacInfo> Supported =
    [
        new("hmac-sha2-256-etm@openssh.com", HashAlgorithmName.SHA256, 32, 32, true),
        new("hmac-sha2-512-etm@openssh.com", HashAlgorithmName.SHA512, 64, 64, true),
        new("hmac-sha2-256", HashAlgorithmName.SHA256, 32, 32, false),
        new("hmac-sha2-512", HashAlgorithmName.SHA512, 64, 64, false),
    ];

    public static MacInfo? Find(string name) => Supported.FirstOrDefault(m => m.Name == name);
}

internal static class Protectors
{
    /// <summary>The protector for one direction from the negotiated names and the derived keys.</summary>
    public static PacketProtector Create(
        CipherInfo cipher, MacInfo? mac, ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, ReadOnlySpan<byte> macKey) =>
        cipher.Name switch
        {
            "chacha20-poly1305@openssh.com" => new ChaCha20Poly1305Protector(key),
            "aes128-gcm@openssh.com" or "aes256-gcm@openssh.com" => new AesGcmProtector(key, iv),
            _ => new CtrHmacProtector(key, iv, mac!.Hash, macKey, mac.Length, mac.EncryptThenMac),
        };
}
