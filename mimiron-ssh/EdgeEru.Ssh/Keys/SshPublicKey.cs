using System.Security.Cryptography;
using System.Text;
using EdgeEru.Ssh.Wire;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;

namespace EdgeEru.Ssh.Keys;

/// <summary>
/// A public key in SSH wire form (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709): ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa.
/// Verifies signatures in the algorithms a client may use with it (RSA only with SHA-2, RFC 8332).
/// </summary>
public sealed class SshPublicKey : IEquatable<SshPublicKey>
{
    private readonly byte[] _blob;
    private readonly Func<string, byte[], byte[], bool> _verify;

    private SshPublicKey(string keyType, byte[] blob, string[] signatureAlgorithms, Func<string, byte[], byte[], bool> verify)
    {
        KeyType = keyType;
        _blob = blob;
        SignatureAlgorithms = signatureAlgorithms;
        _verify = verify;
    }

    /// <summary>The key type as named in the blob (e.g. <c>ssh-rsa</c> for all RSA signature algorithms).</summary>
    public string KeyType { get; }

    /// <summary>Set when this is an OpenSSH certificate; signatures are then made with its <see cref="SshCertificate.Key"/>.</summary>
    public SshCertificate? Certificate { get; private init; }

    /// <summary>The signature algorithms this key can be used with.</summary>
    public IReadOnlyList<string> SignatureAlgorithms { get; }

    public ReadOnlySpan<byte> Blob => _blob;

    /// <summary>OpenSSH's fingerprint: <c>SHA256:</c> and the unpadded base64 of the blob's SHA-256.</summary>
    public string Fingerprint => "SHA256:" + Convert.ToBase64String(SHA256.HashData(_blob)).TrimEnd('=');

    /// <summary>The key as an authorized_keys / .pub line without comment.</summary>
    public string ToOpenSsh() => KeyType + " " + Convert.ToBase64String(_blob);

    public static readonly IReadOnlyList<string> KeyTypes =
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

    /// <summary>Parses a key blob; throws <see cref="SshProtocolException"/> naming what is wrong.</summary>
    public static SshPublicKey Parse(ReadOnlySpan<byte> blob)
    {
        var r = new SshReader(blob);
        var type = r.Utf8("key type");
        if (SshCertificate.Types.ContainsKey(type))
        {
            var (cert, _) = SshCertificate.Parse(type, blob);
            // A certificate signs with its key; the algorithm names are the key's with the certificate suffix
            // (rsa-sha2-256-cert-v01@openssh.com).
            var algorithms = cert.Key.SignatureAlgorithms.Select(a => a + "-cert-v01@openssh.com").ToArray();
            return new SshPublicKey(type, blob.ToArray(), algorithms,
                (alg, data, sig) => cert.Key._verify(alg[..^"-cert-v01@openssh.com".Length], data, sig)) { Certificate = cert };
        }
        switch (type)
        {
            case "ssh-ed25519":
            {
                var pk = r.String("ed25519 public key");
                if (pk.Length != 32) throw new SshProtocolException($"ed25519 public key is {pk.Length} bytes, not 32");
                r.ExpectEnd("ed25519 key");
                var key = new Ed25519PublicKeyParameters(pk.ToArray());
                return new SshPublicKey(type, blob.ToArray(), ["ssh-ed25519"], (alg, data, sig) =>
                {
                    if (sig.Length != 64) return false;
                    var v = new Ed25519Signer();
                    v.Init(false, key);
                    v.BlockUpdate(data, 0, data.Length);
                    return v.VerifySignature(sig);
                });
            }
            case "ecdsa-sha2-nistp256" or "ecdsa-sha2-nistp384" or "ecdsa-sha2-nistp521":
            {
                var curveName = r.Utf8("curve name");
                if (type != "ecdsa-sha2-" + curveName) throw new SshProtocolException($"key type {type} with curve {curveName}");
                var q = r.String("ecdsa point");
                r.ExpectEnd("ecdsa key");
                var (curve, hash, size) = EcdsaCurve(curveName);
                if (q.Length != 1 + 2 * size || q[0] != 4)
                    throw new SshProtocolException("ecdsa point is not an uncompressed point of the curve");
                var ecdsa = ECDsa.Create();
                try
                {
                    ecdsa.ImportParameters(new ECParameters
                    {
                        Curve = curve,
                        Q = new ECPoint { X = q.Slice(1, size).ToArray(), Y = q.Slice(1 + size, size).ToArray() },
                    });
                }
                catch (CryptographicException e)
                {
                    ecdsa.Dispose();
                    throw new SshProtocolException($"ecdsa point is not on {curveName}: {e.Message}");
                }
                return new SshPublicKey(type, blob.ToArray(), [type], (alg, data, sig) =>
                {
                    // The signature is mpint r, mpint s; .NET wants them as fixed-size big-endian halves.
                    var sr = new SshReader(sig);
                    var rs = new byte[2 * size];
                    if (!FitInto(sr.MpintUnsigned("ecdsa r"), rs.AsSpan(0, size)) || !FitInto(sr.MpintUnsigned("ecdsa s"), rs.AsSpan(size)))
                        return false;
                    sr.ExpectEnd("ecdsa signature");
                    return ecdsa.VerifyData(data, rs, hash);
                });
            }
            case "ssh-rsa":
            {
                var e = r.MpintUnsigned("rsa exponent").ToArray();
                var n = r.MpintUnsigned("rsa modulus").ToArray();
                r.ExpectEnd("rsa key");
                if (n.Length * 8 < 1024) throw new SshProtocolException($"rsa key of {n.Length * 8} bits is too small (1024 at least)");
                var rsa = RSA.Create();
                try
                {
                    rsa.ImportParameters(new RSAParameters { Exponent = e, Modulus = n });
                }
                catch (CryptographicException ex)
                {
                    rsa.Dispose();
                    throw new SshProtocolException($"rsa key is not valid: {ex.Message}");
                }
                return new SshPublicKey(type, blob.ToArray(), ["rsa-sha2-512", "rsa-sha2-256"], (alg, data, sig) =>
                {
                    if (sig.Length > n.Length) return false;
                    if (sig.Length < n.Length) sig = [.. new byte[n.Length - sig.Length], .. sig];
                    var h = alg == "rsa-sha2-512" ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256;
                    return rsa.VerifyData(data, sig, h, RSASignaturePadding.Pkcs1);
                });
            }
            default:
                throw new SshProtocolException($"key type {type} is not supported (supported: {string.Join(", ", KeyTypes)})");
        }
    }

    internal static (ECCurve Curve, HashAlgorithmName Hash, int Size) EcdsaCurve(string name) => name switch
    {
        "nistp256" => (ECCurve.NamedCurves.nistP256, HashAlgorithmName.SHA256, 32),
        "nistp384" => (ECCurve.NamedCurves.nistP384, HashAlgorithmName.SHA384, 48),
        "nistp521" => (ECCurve.NamedCurves.nistP521, HashAlgorithmName.SHA512, 66),
        _ => throw new SshProtocolException($"curve {name} is not supported"),
    };

    private static bool FitInto(ReadOnlySpan<byte> magnitude, Span<byte> dest)
    {
        if (magnitude.Length > dest.Length) return false;
        dest.Clear();
        magnitude.CopyTo(dest[(dest.Length - magnitude.Length)..]);
        return true;
    }

    /// <summary>
    /// Verifies a signature blob (<c>string algorithm, string signature</c>) over <paramref name="data"/>; the algorithm must be
    /// <paramref name="expectedAlgorithm"/> and one this key type allows. False for any mismatch or malformed blob.
    /// </summary>
    public bool Verify(string expectedAlgorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signatureBlob)
    {
        try
        {
            var r = new SshReader(signatureBlob);
            var alg = r.Utf8("signature algorithm");
            var sig = r.String("signature").ToArray();
            r.ExpectEnd("signature blob");
            if (!SignatureAlgorithms.Contains(expectedAlgorithm)) return false;
            // With a certificate the signature names the plain algorithm (RFC-less but as OpenSSH does).
            var plain = Certificate is null ? expectedAlgorithm : expectedAlgorithm[..^"-cert-v01@openssh.com".Length];
            if (alg != plain) return false;
            return _verify(expectedAlgorithm, data.ToArray(), sig);
        }
        catch (SshProtocolException)
        {
            return false;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    /// <summary>
    /// Parses an OpenSSH authorized_keys line: <c>[options] keytype base64 [comment]</c>. Options are returned as written
    /// (the gateway refuses lines with options it does not understand).
    /// </summary>
    public static AuthorizedKey ParseAuthorizedKey(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var text = line.Trim();
        if (text.Length == 0 || text[0] == '#') throw new FormatException("authorized key line is empty or a comment");
        string? options = null;
        var firstToken = text.Split(' ', 2)[0];
        var looksLikeKeyType = System.Text.RegularExpressions.Regex.IsMatch(firstToken, "^(ssh|ecdsa|sk)-[a-z0-9@.-]+$");
        if (!looksLikeKeyType)
        {
            // Options end at the first space outside double quotes.
            var quoted = false;
            var i = 0;
            for (; i < text.Length; i++)
            {
                if (text[i] == '"') quoted = !quoted;
                else if (text[i] == ' ' && !quoted) break;
            }
            options = text[..i];
            text = text[i..].TrimStart();
        }
        var parts = text.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2) throw new FormatException("authorized key line needs a key type and base64 key data");
        if (!KeyTypes.Contains(parts[0]))
            throw new FormatException($"key type {parts[0]} is not supported (supported: {string.Join(", ", KeyTypes)})");
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(parts[1]);
        }
        catch (FormatException)
        {
            throw new FormatException("authorized key data is not base64");
        }
        SshPublicKey key;
        try
        {
            key = Parse(blob);
        }
        catch (SshProtocolException e)
        {
            throw new FormatException("authorized key is malformed: " + e.Message);
        }
        if (key.KeyType != parts[0]) throw new FormatException($"authorized key says {parts[0]} but holds a {key.KeyType} key");
        return new AuthorizedKey(key, options, parts.Length > 2 ? parts[2].Trim() : null);
    }

    public bool Equals(SshPublicKey? other) => other is not null && _blob.AsSpan().SequenceEqual(other._blob);
    public override bool Equals(object? obj) => Equals(obj as SshPublicKey);
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.AddBytes(_blob);
        return h.ToHashCode();
    }

    public override string ToString() => $"{KeyType} {Fingerprint}";

    internal static string Ascii(ReadOnlySpan<byte> b) => Encoding.ASCII.GetString(b);
}

/// <summary>One line of an authorized_keys list.</summary>
public sealed record AuthorizedKey(SshPublicKey Key, string? Options, string? Comment);
