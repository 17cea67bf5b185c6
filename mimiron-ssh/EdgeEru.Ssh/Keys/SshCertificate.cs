using System.Net;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Keys;

/// <summary>
/// An OpenSSH certificate (PROTOCOL.certkeys): a public key signed by a certificate authority, with principals, a
/// validity window, critical options and extensions. Parsing checks the CA's signature; whether the CA is trusted and
/// the certificate fits a login is <see cref="Check"/>.
/// </summary>
public sealed class SshCertificate
{
    public const uint UserType = 1;
    public const uint HostType = 2;

    public required SshPublicKey Key { get; init; }
    public required ulong Serial { get; init; }
    public required uint Type { get; init; }
    public required string KeyId { get; init; }
    public required IReadOnlyList<string> Principals { get; init; }
    public required ulong ValidAfter { get; init; }
    public required ulong ValidBefore { get; init; }
    public required IReadOnlyDictionary<string, string> CriticalOptions { get; init; }
    public required IReadOnlyList<string> Extensions { get; init; }
    public required SshPublicKey SignatureKey { get; init; }

    /// <summary>Whether the CA's signature over the certificate verifies.</summary>
    public required bool SignatureValid { get; init; }

    /// <summary>Certificate key types and the plain key type each wraps.</summary>
    public static readonly IReadOnlyDictionary<string, string> Types = new Dictionary<string, string>
    {
        ["ssh-ed25519-cert-v01@openssh.com"] = "ssh-ed25519",
        ["ecdsa-sha2-nistp256-cert-v01@openssh.com"] = "ecdsa-sha2-nistp256",
        ["ecdsa-sha2-nistp384-cert-v01@openssh.com"] = "ecdsa-sha2-nistp384",
        ["ecdsa-sha2-nistp521-cert-v01@openssh.com"] = "ecdsa-sha2-nistp521",
        ["ssh-rsa-cert-v01@openssh.com"] = "ssh-rsa",
    };

    /// <summary>Critical options this code understands; a certificate with any other is refused.</summary>
    public static readonly IReadOnlyList<string> KnownCriticalOptions = ["force-command", "source-address"];

    internal static (SshCertificate Certificate, byte[] InnerBlob) Parse(string type, ReadOnlySpan<byte> blob)
    {
        var plain = Types[type];
        var r = new SshReader(blob);
        r.Utf8("certificate type");
        r.String("certificate nonce");
        var inner = new SshWriter().String(plain);
        switch (plain)
        {
            case "ssh-ed25519":
                inner.String(r.String("ed25519 public key"));
                break;
            case "ssh-rsa":
                inner.MpintUnsigned(r.MpintUnsigned("rsa exponent")).MpintUnsigned(r.MpintUnsigned("rsa modulus"));
                break;
            default:
                inner.String(r.String("curve name")).String(r.String("ecdsa point"));
                break;
        }
        var serial = r.UInt64("serial");
        var certType = r.UInt32("certificate role");
        var keyId = r.Utf8("key id");
        var principals = Strings(r.String("valid principals"), "principal");
        var validAfter = r.UInt64("valid after");
        var validBefore = r.UInt64("valid before");
        var critical = Options(r.String("critical options"));
        var extensions = Options(r.String("extensions")).Keys.ToList();
        r.String("reserved");
        var caBlob = r.String("signature key");
        var signedLength = blob.Length - r.Remaining;
        var signature = r.String("certificate signature");
        r.ExpectEnd("certificate");
        var ca = SshPublicKey.Parse(caBlob);
        if (ca.Certificate is not null) throw new SshProtocolException("a certificate's signing key is itself a certificate");
        var sigAlg = SignatureAlgorithm(signature);
        var valid = sigAlg is not null && ca.Verify(sigAlg, blob[..signedLength], signature);
        var key = SshPublicKey.Parse(inner.WrittenSpan);
        return (new SshCertificate
        {
            Key = key, Serial = serial, Type = certType, KeyId = keyId, Principals = principals, ValidAfter = validAfter,
            ValidBefore = validBefore, CriticalOptions = critical, Extensions = extensions, SignatureKey = ca, SignatureValid = valid,
        }, inner.ToArray());
    }

    private static string? SignatureAlgorithm(ReadOnlySpan<byte> signature)
    {
        try
        {
            return new SshReader(signature).Utf8("signature algorithm");
        }
        catch (SshProtocolException)
        {
            return null;
        }
    }

    private static List<string> Strings(ReadOnlySpan<byte> packed, string what)
    {
        var r = new SshReader(packed);
        var list = new List<string>();
        while (!r.AtEnd) list.Add(r.Utf8(what));
        return list;
    }

    private static Dictionary<string, string> Options(ReadOnlySpan<byte> packed)
    {
        var r = new SshReader(packed);
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        while (!r.AtEnd)
        {
            var name = r.Utf8("option name");
            var data = r.String("option data");
            // An option's data is itself a string (or empty for flags).
            d[name] = data.Length == 0 ? "" : new SshReader(data).Utf8("option value");
        }
        return d;
    }

    /// <summary>
    /// Why this certificate may not log in as <paramref name="principal"/> from <paramref name="remote"/> at <paramref name="now"/>
    /// when signed by one of <paramref name="trustedCas"/>; null when it may.
    /// </summary>
    public string? Check(IEnumerable<SshPublicKey> trustedCas, string principal, DateTimeOffset now, IPAddress? remote)
    {
        if (!trustedCas.Contains(SignatureKey)) return $"certificate signed by an untrusted CA ({SignatureKey.Fingerprint})";
        if (!SignatureValid) return "certificate signature does not verify";
        if (Type != UserType) return "not a user certificate";
        var t = (ulong)now.ToUnixTimeSeconds();
        if (t < ValidAfter) return $"certificate not valid before {Time(ValidAfter)}";
        if (t >= ValidBefore) return $"certificate expired at {Time(ValidBefore)}";
        if (!Principals.Contains(principal)) return $"certificate principals ({string.Join(",", Principals)}) do not include {principal}";
        foreach (var (name, value) in CriticalOptions)
        {
            if (!KnownCriticalOptions.Contains(name)) return $"certificate critical option {name} is not supported";
            if (name == "source-address" && !SourceAllowed(value, remote))
                return $"source address {remote} is not in the certificate's {value}";
        }
        return null;
    }

    /// <summary>The force-command critical option, if any.</summary>
    public string? ForceCommand => CriticalOptions.GetValueOrDefault("force-command");

    private static string Time(ulong seconds) =>
        seconds >= (ulong)DateTimeOffset.MaxValue.ToUnixTimeSeconds()
            ? "forever"
            : DateTimeOffset.FromUnixTimeSeconds((long)seconds).ToString("u", System.Globalization.CultureInfo.InvariantCulture);

    private static bool SourceAllowed(string list, IPAddress? remote)
    {
        if (remote is null) return false;
        if (remote.IsIPv4MappedToIPv6) remote = remote.MapToIPv4();
        foreach (var entry in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (IPNetwork.TryParse(entry, out var net) && net.Contains(remote)) return true;
            if (IPAddress.TryParse(entry, out var single) && single.Equals(remote)) return true;
        }
        return false;
    }
}
