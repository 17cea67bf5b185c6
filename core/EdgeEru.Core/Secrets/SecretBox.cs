using System.Security.Cryptography;
using System.Text;

namespace EdgeEru.Core.Secrets;

/// <summary>
/// Seals secrets with Core's key: AES-256-GCM, a random 96-bit nonce per value, the registry name as
/// associated data (a sealed value copied under another name does not open). Layout: nonce, ciphertext, tag.
/// </summary>
public sealed class SecretBox
{
    private const int NonceSize = 12, TagSize = 16;
    private readonly byte[] _key;

    public SecretBox(byte[] key)
    {
        if (key.Length != 32) throw new ArgumentException($"the secrets key must be 32 bytes, it has {key.Length}", nameof(key));
        _key = key;
    }

    /// <summary>
    /// Reads a key file: 32 raw bytes, or their base64 or hex (with surrounding whitespace), so that
    /// <c>head -c 32 /dev/urandom</c> and <c>openssl rand -base64 32</c> both make one.
    /// </summary>
    public static SecretBox FromFile(string path)
    {
        var raw = File.ReadAllBytes(path);
        if (raw.Length == 32) return new SecretBox(raw);
        var text = Encoding.ASCII.GetString(raw).Trim();
        try
        {
            var fromBase64 = Convert.FromBase64String(text);
            if (fromBase64.Length == 32) return new SecretBox(fromBase64);
        }
        catch (FormatException)
        {
        }
        if (text.Length == 64 && text.All(char.IsAsciiHexDigit)) return new SecretBox(Convert.FromHexString(text));
        throw new ArgumentException(
            $"{path}: a secrets key is 32 bytes (raw, base64 or hex); this file holds {raw.Length} bytes of something else");
    }

    public byte[] Seal(ReadOnlySpan<byte> plaintext, string name)
    {
        var sealedValue = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = sealedValue.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(_key, TagSize);
        gcm.Encrypt(nonce, plaintext, sealedValue.AsSpan(NonceSize, plaintext.Length), sealedValue.AsSpan(NonceSize + plaintext.Length),
            Encoding.UTF8.GetBytes(name));
        return sealedValue;
    }

    /// <summary>
    /// The plaintext; <see cref="CryptographicException"/> when the value was sealed with another key or name, or altered.
    /// </summary>
    public byte[] Open(ReadOnlySpan<byte> sealedValue, string name)
    {
        if (sealedValue.Length < NonceSize + TagSize) throw new CryptographicException($"{name}: the sealed value is too short");
        var plaintext = new byte[sealedValue.Length - NonceSize - TagSize];
        using var gcm = new AesGcm(_key, TagSize);
        try
        {
            gcm.Decrypt(sealedValue[..NonceSize], sealedValue.Slice(NonceSize, plaintext.Length), sealedValue[^TagSize..], plaintext,
                Encoding.UTF8.GetBytes(name));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new CryptographicException(
                $"{name}: the value does not open with this Core's secrets key (sealed with another key, or altered)");
        }
        return plaintext;
    }
}
