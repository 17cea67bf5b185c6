using System.Security.Cryptography;
using EdgeEru.Ssh.Wire;
using Org.BouncyCastle.Crypto.Agreement;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;

namespace EdgeEru.Ssh.Kex;

/// <summary>One ECDH-style key exchange method (RFC 5656 §4, RFC 8731): the client sends Q_C, the server answers Q_S.</summary>
internal abstract class KeyExchangeMethod
{
    public abstract string Name { get; }
    public abstract HashAlgorithmName Hash { get; }

    /// <summary>Our ephemeral public value and the shared secret K, already encoded as an mpint.</summary>
    public abstract (byte[] ServerPublic, byte[] SharedSecretMpint) Agree(ReadOnlySpan<byte> clientPublic);

    public static readonly IReadOnlyList<string> Names = ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"];

    public static KeyExchangeMethod Create(string name) => name switch
    {
        "curve25519-sha256" or "curve25519-sha256@libssh.org" => new Curve25519(name),
        "ecdh-sha2-nistp256" => new EcdhNistP256(),
        _ => throw new SshProtocolException($"key exchange {name} is not supported", DisconnectReason.KeyExchangeFailed),
    };

    protected static byte[] Mpint(ReadOnlySpan<byte> unsignedBigEndian) => new SshWriter(40).MpintUnsigned(unsignedBigEndian).ToArray();

    private sealed class Curve25519(string name) : KeyExchangeMethod
    {
        public override string Name => name;
        public override HashAlgorithmName Hash => HashAlgorithmName.SHA256;

        public override (byte[], byte[]) Agree(ReadOnlySpan<byte> clientPublic)
        {
            if (clientPublic.Length != 32)
                throw new SshProtocolException($"curve25519 client key is {clientPublic.Length} bytes, not 32",
                    DisconnectReason.KeyExchangeFailed);
            var priv = new X25519PrivateKeyParameters(new SecureRandom());
            var agreement = new X25519Agreement();
            agreement.Init(priv);
            var secret = new byte[32];
            try
            {
                agreement.CalculateAgreement(new X25519PublicKeyParameters(clientPublic), secret, 0);
            }
            catch (InvalidOperationException)
            {
                // An all-zero result means a low-order client point (RFC 8731 §3); the library refuses it.
                throw new SshProtocolException("curve25519 shared secret is zero (low-order client key)",
                    DisconnectReason.KeyExchangeFailed);
            }
            // RFC 8731: the 32 bytes are read as a big-endian unsigned integer, as they come.
            var k = Mpint(secret);
            CryptographicOperations.ZeroMemory(secret);
            return (priv.GeneratePublicKey().GetEncoded(), k);
        }
    }

    private sealed class EcdhNistP256 : KeyExchangeMethod
    {
        public override string Name => "ecdh-sha2-nistp256";
        public override HashAlgorithmName Hash => HashAlgorithmName.SHA256;

        public override (byte[], byte[]) Agree(ReadOnlySpan<byte> clientPublic)
        {
            if (clientPublic.Length != 65 || clientPublic[0] != 4)
                throw new SshProtocolException("nistp256 client key is not an uncompressed point", DisconnectReason.KeyExchangeFailed);
            using var peer = ECDiffieHellman.Create();
            try
            {
                // Importing checks the point lies on the curve (RFC 5656 §4 requires the check).
                peer.ImportParameters(new ECParameters
                {
                    Curve = ECCurve.NamedCurves.nistP256,
                    Q = new ECPoint { X = clientPublic.Slice(1, 32).ToArray(), Y = clientPublic.Slice(33, 32).ToArray() },
                });
            }
            catch (CryptographicException e)
            {
                throw new SshProtocolException("nistp256 client key is not on the curve: " + e.Message, DisconnectReason.KeyExchangeFailed);
            }
            using var ours = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            var secret = ours.DeriveRawSecretAgreement(peer.PublicKey);
            var q = ours.ExportParameters(false).Q;
            var k = Mpint(secret);
            CryptographicOperations.ZeroMemory(secret);
            return ([4, .. q.X!, .. q.Y!], k);
        }
    }
}

/// <summary>Key derivation (RFC 4253 §7.2): HASH(K || H || letter || session_id), extended by HASH(K || H || K1 || ...).</summary>
internal static class KeyDerivation
{
    public static byte[] Derive(HashAlgorithmName hash, ReadOnlySpan<byte> sharedSecretMpint, ReadOnlySpan<byte> exchangeHash, char letter,
        ReadOnlySpan<byte> sessionId, int length)
    {
        using var h = IncrementalHash.CreateHash(hash);
        h.AppendData(sharedSecretMpint);
        h.AppendData(exchangeHash);
        h.AppendData([(byte)letter]);
        h.AppendData(sessionId);
        var key = h.GetHashAndReset();
        while (key.Length < length)
        {
            h.AppendData(sharedSecretMpint);
            h.AppendData(exchangeHash);
            h.AppendData(key);
            key = [.. key, .. h.GetHashAndReset()];
        }
        return key[..length];
    }
}
