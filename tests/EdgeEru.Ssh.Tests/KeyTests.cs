using System.Security.Cryptography;
using EdgeEru.Dev;
using EdgeEru.Ssh.Keys;
using Xunit;

namespace EdgeEru.Ssh.Tests;

public sealed class KeyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-ssh-keys-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Host_keys_are_generated_once_and_fingerprints_match_ssh_keygen()
    {
        var first = HostKeyStore.LoadOrCreate(_dir);
        var again = HostKeyStore.LoadOrCreate(_dir);
        Assert.Equal(first.Select(k => Convert.ToBase64String(k.PublicBlob)), again.Select(k => Convert.ToBase64String(k.PublicBlob)));
        foreach (var key in first)
        {
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, key.FileName)));
            var keygen = await Shell.RunAsync(Tools.Find("ssh-keygen", "openssh-client"),
                ["-l", "-E", "sha256", "-f", Path.Combine(_dir, key.FileName + ".pub")]);
            Assert.Contains(key.PublicKey.Fingerprint, keygen);
        }
    }

    [Fact]
    public void Host_key_signatures_verify_with_the_public_key_in_each_algorithm()
    {
        var data = RandomNumberGenerator.GetBytes(32);
        foreach (var key in HostKeyStore.LoadOrCreate(_dir))
        foreach (var alg in key.Algorithms)
        {
            var sig = key.Sign(alg, data);
            Assert.True(key.PublicKey.Verify(alg, data, sig), alg);
            Assert.False(key.PublicKey.Verify(alg, [.. data, 1], sig), alg);
        }
    }

    [Fact]
    public void A_corrupt_host_key_file_is_a_clear_error()
    {
        File.WriteAllText(Path.Combine(_dir, "ssh_host_ed25519_key"), "not a key");
        var e = Assert.Throws<InvalidDataException>(() => HostKeyStore.LoadOrCreate(_dir));
        Assert.Contains("ssh_host_ed25519_key", e.Message);
    }

    [Theory]
    [InlineData("ed25519")]
    [InlineData("ecdsa")]
    [InlineData("rsa")]
    public async Task Authorized_keys_lines_from_ssh_keygen_parse_with_the_same_fingerprint(string type)
    {
        var path = Path.Combine(_dir, "id_" + type);
        var keygen = Tools.Find("ssh-keygen", "openssh-client");
        await Shell.RunAsync(keygen, ["-q", "-t", type, "-N", "", "-C", "ops@laptop", "-f", path]);
        var line = File.ReadAllText(path + ".pub").Trim();
        var parsed = SshPublicKey.ParseAuthorizedKey(line);
        Assert.Equal("ops@laptop", parsed.Comment);
        Assert.Null(parsed.Options);
        Assert.Contains(parsed.Key.Fingerprint, await Shell.RunAsync(keygen, ["-l", "-E", "sha256", "-f", path + ".pub"]));

        var withOptions = SshPublicKey.ParseAuthorizedKey("no-pty,command=\"echo a b\" " + line);
        Assert.Equal("no-pty,command=\"echo a b\"", withOptions.Options);
        Assert.Equal(parsed.Key, withOptions.Key);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("ssh-ed25519", "key type and base64")]
    [InlineData("ssh-dss AAAAB3NzaC1kc3M=", "not supported")]
    [InlineData("ssh-ed25519 !!!!", "not base64")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQA=", "malformed")]
    public void Bad_authorized_keys_lines_say_what_is_wrong(string line, string expected)
    {
        var e = Assert.Throws<FormatException>(() => SshPublicKey.ParseAuthorizedKey(line));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Rsa_signatures_need_sha2_and_the_announced_algorithm()
    {
        using var rsa = RSA.Create(2048);
        using var host = new RsaHostKey(RSA.Create(rsa.ExportParameters(true)));
        var data = RandomNumberGenerator.GetBytes(64);
        var sha256 = host.Sign("rsa-sha2-256", data);
        Assert.True(host.PublicKey.Verify("rsa-sha2-256", data, sha256));
        Assert.False(host.PublicKey.Verify("rsa-sha2-512", data, sha256)); // the blob names another algorithm
        Assert.False(host.PublicKey.Verify("ssh-rsa", data, sha256));
    }

    private async Task<(string Key, SshPublicKey Ca)> CertifiedKeyAsync(string type, string caType, params string[] signArgs)
    {
        var keygen = Tools.Find("ssh-keygen", "openssh-client");
        var ca = Path.Combine(_dir, "ca_" + caType);
        if (!File.Exists(ca)) await Shell.RunAsync(keygen, ["-q", "-t", caType, "-N", "", "-f", ca]);
        var key = Path.Combine(_dir, $"user_{type}_{Guid.NewGuid():N}");
        await Shell.RunAsync(keygen, ["-q", "-t", type, "-N", "", "-f", key]);
        await Shell.RunAsync(keygen, ["-q", "-s", ca, .. signArgs, key + ".pub"]);
        return (key, SshPublicKey.ParseAuthorizedKey(File.ReadAllText(ca + ".pub")).Key);
    }

    private static SshPublicKey Cert(string key) =>
        SshPublicKey.Parse(Convert.FromBase64String(File.ReadAllText(key + "-cert.pub").Split(' ')[1]));

    [Theory]
    [InlineData("ed25519", "ed25519")]
    [InlineData("ecdsa", "rsa")]
    [InlineData("rsa", "ecdsa")]
    public async Task Certificates_from_ssh_keygen_parse_and_check(string type, string caType)
    {
        var (key, ca) = await CertifiedKeyAsync(type, caType, "-I", "ops-laptop", "-n", "ops,admin", "-V", "-5m:+1h", "-z", "42");
        var k = Cert(key);
        var cert = Assert.IsType<SshCertificate>(k.Certificate);
        Assert.Equal("ops-laptop", cert.KeyId);
        Assert.Equal(42UL, cert.Serial);
        Assert.Equal(["ops", "admin"], cert.Principals);
        Assert.True(cert.SignatureValid);
        Assert.Equal(SshPublicKey.ParseAuthorizedKey(File.ReadAllText(key + ".pub")).Key, cert.Key);
        Assert.Contains("permit-pty", cert.Extensions);
        var now = DateTimeOffset.UtcNow;
        Assert.Null(cert.Check([ca], "ops", now, System.Net.IPAddress.Loopback));
        Assert.Contains("do not include root", cert.Check([ca], "root", now, null));
        Assert.Contains("expired", cert.Check([ca], "ops", now.AddHours(2), null));
        Assert.Contains("not valid before", cert.Check([ca], "ops", now.AddHours(-1), null));
        Assert.Contains("untrusted CA", cert.Check([cert.Key], "ops", now, null));
    }

    [Fact]
    public async Task Critical_options_are_honoured_or_refused()
    {
        var (key, ca) = await CertifiedKeyAsync("ed25519", "ed25519", "-I", "x", "-n", "ops",
            "-O", "source-address=10.0.0.0/8,127.0.0.1", "-O", "force-command=uptime");
        var cert = Cert(key).Certificate!;
        Assert.Equal("uptime", cert.ForceCommand);
        Assert.Null(cert.Check([ca], "ops", DateTimeOffset.UtcNow, System.Net.IPAddress.Loopback));
        Assert.Contains("source address", cert.Check([ca], "ops", DateTimeOffset.UtcNow, System.Net.IPAddress.Parse("192.0.2.1")));

        var (other, ca2) = await CertifiedKeyAsync("ed25519", "ed25519", "-I", "y", "-n", "ops", "-O", "verify-required");
        Assert.Contains("critical option verify-required is not supported",
            Cert(other).Certificate!.Check([ca2], "ops", DateTimeOffset.UtcNow, null));
    }

    [Fact]
    public async Task A_tampered_certificate_fails_its_signature()
    {
        var (key, ca) = await CertifiedKeyAsync("ed25519", "ed25519", "-I", "x", "-n", "ops");
        var blob = Convert.FromBase64String(File.ReadAllText(key + "-cert.pub").Split(' ')[1]);
        var at = System.Text.Encoding.ASCII.GetBytes("ops");
        var i = blob.AsSpan().IndexOf(at);
        blob[i] = (byte)'x'; // principal ops → xps
        var cert = SshPublicKey.Parse(blob).Certificate!;
        Assert.False(cert.SignatureValid);
        Assert.Equal("certificate signature does not verify", cert.Check([ca], "xps", DateTimeOffset.UtcNow, null));
    }
}
