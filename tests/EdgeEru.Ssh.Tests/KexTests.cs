using System.Security.Cryptography;
using EdgeEru.Ssh.Crypto;
using EdgeEru.Ssh.Kex;
using EdgeEru.Ssh.Wire;
using Org.BouncyCastle.Crypto.Agreement;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;
using Xunit;

namespace EdgeEru.Ssh.Tests;

public class KexTests
{
    private static KexInit Init(string[] kex, string[] ciphers, string[] macs, string[]? hostKeys = null) =>
        new(kex, hostKeys ?? ["ssh-ed25519"], ciphers, ciphers, macs, macs, ["none"], ["none"], false);

    private static bool IsAead(string n) => CipherInfo.Find(n)?.IsAead == true;

    [Fact]
    public void KexInit_round_trips()
    {
        var k = Init(["curve25519-sha256", "ext-info-s"], ["aes256-ctr"], ["hmac-sha2-256"]) with { FirstKexPacketFollows = true };
        var back = KexInit.Decode(k.Encode());
        Assert.Equal(k.Kex, back.Kex);
        Assert.Equal(k.CipherStoC, back.CipherStoC);
        Assert.Equal(k.MacCtoS, back.MacCtoS);
        Assert.True(back.FirstKexPacketFollows);
    }

    [Fact]
    public void Negotiation_takes_the_clients_first_choice_the_server_supports()
    {
        var client = Init(
            ["sntrup761x25519-sha512@openssh.com", "ecdh-sha2-nistp256", "curve25519-sha256", "ext-info-c", "kex-strict-c-v00@openssh.com"],
            ["aes256-ctr", "aes128-gcm@openssh.com"], ["umac-64@openssh.com", "hmac-sha2-256"]);
        var server = Init(["curve25519-sha256", "ecdh-sha2-nistp256", "ext-info-s", "kex-strict-s-v00@openssh.com"],
            ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr"], ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-256"]);
        var n = Negotiated.From(client, server, IsAead);
        Assert.Equal("ecdh-sha2-nistp256", n.Kex);
        Assert.Equal("aes256-ctr", n.CipherCtoS);
        Assert.Equal("hmac-sha2-256", n.MacCtoS);
    }

    [Fact]
    public void An_aead_cipher_needs_no_mac()
    {
        var client = Init(["curve25519-sha256"], ["chacha20-poly1305@openssh.com"], ["hmac-md5"]);
        var server = Init(["curve25519-sha256"], ["chacha20-poly1305@openssh.com"], ["hmac-sha2-256"]);
        var n = Negotiated.From(client, server, IsAead);
        Assert.Null(n.MacCtoS);
    }

    [Fact]
    public void No_common_algorithm_names_both_lists()
    {
        var client = Init(["diffie-hellman-group1-sha1"], ["aes256-ctr"], ["hmac-sha2-256"]);
        var server = Init(["curve25519-sha256", "ext-info-s"], ["aes256-ctr"], ["hmac-sha2-256"]);
        var e = Assert.Throws<SshProtocolException>(() => Negotiated.From(client, server, IsAead));
        Assert.Equal(DisconnectReason.KeyExchangeFailed, e.Reason);
        Assert.Contains("diffie-hellman-group1-sha1", e.Message);
        Assert.Contains("curve25519-sha256", e.Message);
    }

    [Fact]
    public void Pseudo_algorithms_never_win_the_negotiation()
    {
        var client = Init(["ext-info-c", "kex-strict-c-v00@openssh.com"], ["aes256-ctr"], ["hmac-sha2-256"]);
        var server = Init(["ext-info-c", "kex-strict-c-v00@openssh.com"], ["aes256-ctr"], ["hmac-sha2-256"]);
        Assert.Throws<SshProtocolException>(() => Negotiated.From(client, server, IsAead));
    }

    [Fact]
    public void Curve25519_agrees_with_an_independent_client_and_encodes_k_as_mpint()
    {
        var clientPriv = new X25519PrivateKeyParameters(new SecureRandom());
        var method = KeyExchangeMethod.Create("curve25519-sha256");
        var (serverPublic, k) = method.Agree(clientPriv.GeneratePublicKey().GetEncoded());
        var agreement = new X25519Agreement();
        agreement.Init(clientPriv);
        var secret = new byte[32];
        agreement.CalculateAgreement(new X25519PublicKeyParameters(serverPublic), secret, 0);
        Assert.Equal(new SshWriter().MpintUnsigned(secret).ToArray(), k);
    }

    [Fact]
    public void Curve25519_refuses_a_low_order_point()
    {
        var method = KeyExchangeMethod.Create("curve25519-sha256");
        Assert.Throws<SshProtocolException>(() => method.Agree(new byte[32]));
        Assert.Throws<SshProtocolException>(() => method.Agree(new byte[31]));
    }

    [Fact]
    public void Nistp256_agrees_with_dotnet_and_refuses_points_off_the_curve()
    {
        using var client = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var q = client.ExportParameters(false).Q;
        var method = KeyExchangeMethod.Create("ecdh-sha2-nistp256");
        var (serverPublic, k) = method.Agree([4, .. q.X!, .. q.Y!]);
        using var server = ECDiffieHellman.Create();
        server.ImportParameters(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = serverPublic[1..33], Y = serverPublic[33..] },
        });
        Assert.Equal(new SshWriter().MpintUnsigned(client.DeriveRawSecretAgreement(server.PublicKey)).ToArray(), k);

        var bad = new byte[65];
        bad[0] = 4;
        bad[64] = 7;
        Assert.Throws<SshProtocolException>(() => method.Agree(bad));
    }

    [Fact]
    public void Key_derivation_extends_past_one_hash()
    {
        var k = new SshWriter().MpintUnsigned(RandomNumberGenerator.GetBytes(32)).ToArray();
        var h = RandomNumberGenerator.GetBytes(32);
        var key = KeyDerivation.Derive(HashAlgorithmName.SHA256, k, h, 'C', h, 64);
        var k1 = SHA256.HashData([.. k, .. h, (byte)'C', .. h]);
        var k2 = SHA256.HashData([.. k, .. h, .. k1]);
        Assert.Equal([.. k1, .. k2], key);
    }
}
