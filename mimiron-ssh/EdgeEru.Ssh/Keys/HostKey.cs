using System.Security.Cryptography;
using EdgeEru.Ssh.Wire;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;

namespace EdgeEru.Ssh.Keys;

/// <summary>A server host key: its public blob, and signatures over the exchange hash in the algorithms it offers.</summary>
public abstract class HostKey : IDisposable
{
    /// <summary>Host key algorithms (KEXINIT names) this key signs with, best first.</summary>
    public abstract IReadOnlyList<string> Algorithms { get; }

    public abstract byte[] PublicBlob { get; }

    /// <summary>The file name it is kept under (as sshd names them).</summary>
    public abstract string FileName { get; }

    /// <summary>A signature blob: <c>string algorithm, string signature</c>.</summary>
    public abstract byte[] Sign(string algorithm, ReadOnlySpan<byte> data);

    /// <summary>PKCS#8 DER of the private key, for the key file.</summary>
    public abstract byte[] ExportPkcs8();

    public SshPublicKey PublicKey => SshPublicKey.Parse(PublicBlob);

    public virtual void Dispose() => GC.SuppressFinalize(this);

    protected static byte[] SignatureBlob(string algorithm, ReadOnlySpan<byte> signature) =>
        new SshWriter().String(algorithm).String(signature).ToArray();
}

public sealed class Ed25519HostKey : HostKey
{
    private readonly Ed25519PrivateKeyParameters _key;

    public Ed25519HostKey(Ed25519PrivateKeyParameters key)
    {
        _key = key;
        PublicBlob = new SshWriter().String("ssh-ed25519").String(key.GeneratePublicKey().GetEncoded()).ToArray();
    }

    public static Ed25519HostKey Generate() => new(new Ed25519PrivateKeyParameters(new SecureRandom()));

    public override IReadOnlyList<string> Algorithms => ["ssh-ed25519"];
    public override byte[] PublicBlob { get; }
    public override string FileName => "ssh_host_ed25519_key";

    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        var s = new Ed25519Signer();
        s.Init(true, _key);
        s.BlockUpdate(data);
        return SignatureBlob("ssh-ed25519", s.GenerateSignature());
    }

    public override byte[] ExportPkcs8() => PrivateKeyInfoFactory.CreatePrivateKeyInfo(_key).GetEncoded();
}

public sealed class EcdsaHostKey : HostKey
{
    private readonly ECDsa _key;

    public EcdsaHostKey(ECDsa key)
    {
        _key = key;
        var p = key.ExportParameters(false);
        PublicBlob = new SshWriter().String("ecdsa-sha2-nistp256").String("nistp256").String([4, .. p.Q.X!, .. p.Q.Y!]).ToArray();
    }

    public static EcdsaHostKey Generate() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public override IReadOnlyList<string> Algorithms => ["ecdsa-sha2-nistp256"];
    public override byte[] PublicBlob { get; }
    public override string FileName => "ssh_host_ecdsa_key";

    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        var rs = _key.SignData(data, HashAlgorithmName.SHA256);
        var inner = new SshWriter().MpintUnsigned(rs.AsSpan(0, 32)).MpintUnsigned(rs.AsSpan(32));
        return SignatureBlob("ecdsa-sha2-nistp256", inner.WrittenSpan);
    }

    public override byte[] ExportPkcs8() => _key.ExportPkcs8PrivateKey();

    public override void Dispose()
    {
        _key.Dispose();
        base.Dispose();
    }
}

public sealed class RsaHostKey : HostKey
{
    private readonly RSA _key;

    public RsaHostKey(RSA key)
    {
        _key = key;
        var p = key.ExportParameters(false);
        PublicBlob = new SshWriter().String("ssh-rsa").MpintUnsigned(p.Exponent).MpintUnsigned(p.Modulus).ToArray();
    }

    public static RsaHostKey Generate() => new(RSA.Create(3072));

    public override IReadOnlyList<string> Algorithms => ["rsa-sha2-512", "rsa-sha2-256"];
    public override byte[] PublicBlob { get; }
    public override string FileName => "ssh_host_rsa_key";

    public override byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        var h = algorithm == "rsa-sha2-512" ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256;
        return SignatureBlob(algorithm, _key.SignData(data.ToArray(), h, RSASignaturePadding.Pkcs1));
    }

    public override byte[] ExportPkcs8() => _key.ExportPkcs8PrivateKey();

    public override void Dispose()
    {
        _key.Dispose();
        base.Dispose();
    }
}

/// <summary>The gateway's host keys, generated on first start and kept as PKCS#8 PEM files (mode 0600) in a directory.</summary>
public static class HostKeyStore
{
    public static IReadOnlyList<HostKey> LoadOrCreate(string directory)
    {
        Directory.CreateDirectory(directory);
        return
        [
            Load(directory, "ssh_host_ed25519_key", Ed25519HostKey.Generate, der =>
                new Ed25519HostKey((Ed25519PrivateKeyParameters)PrivateKeyFactory.CreateKey(der))),
            Load(directory, "ssh_host_ecdsa_key", EcdsaHostKey.Generate, der =>
            {
                var k = ECDsa.Create();
                k.ImportPkcs8PrivateKey(der, out _);
                return new EcdsaHostKey(k);
            }),
            Load(directory, "ssh_host_rsa_key", RsaHostKey.Generate, der =>
            {
                var k = RSA.Create();
                k.ImportPkcs8PrivateKey(der, out _);
                return new RsaHostKey(k);
            }),
        ];
    }

    private static HostKey Load(string directory, string name, Func<HostKey> generate, Func<byte[], HostKey> import)
    {
        var path = Path.Combine(directory, name);
        if (File.Exists(path))
        {
            try
            {
                var pem = PemEncoding.Find(File.ReadAllText(path));
                var text = File.ReadAllText(path);
                return import(Convert.FromBase64String(text[pem.Base64Data]));
            }
            catch (Exception e) when (e is ArgumentException or FormatException or CryptographicException or InvalidCastException
                or IOException)
            {
                throw new InvalidDataException($"host key file {path} is not a PKCS#8 private key of its type: {e.Message}", e);
            }
        }
        var key = generate();
        var tmp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var f = new FileStream(tmp, options))
        using (var w = new StreamWriter(f))
            w.Write(PemEncoding.Write("PRIVATE KEY", key.ExportPkcs8()));
        File.Move(tmp, path, overwrite: true); // a crash mid-write never leaves half a key behind
        File.WriteAllText(path + ".pub", key.PublicKey.ToOpenSsh() + "\n");
        return key;
    }
}
