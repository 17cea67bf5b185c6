using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using EdgeEru.Dev;
using EdgeEru.Lb.Acme;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>The ACME client's pure parts: JWS signing, JWK thumbprint, key authorization, CSR, schedule.</summary>
public sealed class AcmeJwsTests
{
    private static readonly ECDsa Key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    [Fact]
    public void The_jwk_is_canonical_and_its_thumbprint_is_the_sha256_of_it()
    {
        var jwk = AcmeJws.Jwk(Key);
        var p = Key.ExportParameters(false);
        // RFC 7638: required members only, lexicographic order, no whitespace.
        var (x, y) = (Base64Url.EncodeToString(p.Q.X), Base64Url.EncodeToString(p.Q.Y));
        Assert.Equal($"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{x}\",\"y\":\"{y}\"}}", jwk);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(jwk))), AcmeJws.Thumbprint(Key));
        Assert.Equal(43, AcmeJws.Thumbprint(Key).Length); // 32 bytes, unpadded
        Assert.Equal("tok-EN_123." + AcmeJws.Thumbprint(Key), AcmeJws.KeyAuthorization("tok-EN_123", Key));
    }

    [Fact]
    public void A_known_key_has_its_known_thumbprint()
    {
        // The P-256 key of RFC 7517 appendix A.1; its RFC 7638 thumbprint as Python hashlib computes it.
        using var key = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint
            {
                X = Base64Url.DecodeFromChars("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"),
                Y = Base64Url.DecodeFromChars("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"),
            },
        });
        Assert.Equal("cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s", AcmeJws.Thumbprint(key));
    }

    [Theory]
    [InlineData(null, "{\"termsOfServiceAgreed\":true}")]
    [InlineData("https://ca.test/acct/7", null)]
    public void A_signed_request_carries_its_header_and_verifies_with_es256(string? kid, string? payload)
    {
        var url = new Uri("https://ca.test/new-order");
        using var doc = JsonDocument.Parse(AcmeJws.Sign(Key, url, "nonce-1", kid, payload));
        var root = doc.RootElement;
        var protectedB64 = root.GetProperty("protected").GetString()!;
        var payloadB64 = root.GetProperty("payload").GetString()!;
        using var header = JsonDocument.Parse(Base64Url.DecodeFromChars(protectedB64));
        var h = header.RootElement;
        Assert.Equal("ES256", h.GetProperty("alg").GetString());
        Assert.Equal("nonce-1", h.GetProperty("nonce").GetString());
        Assert.Equal(url.AbsoluteUri, h.GetProperty("url").GetString());
        if (kid is null)
        {
            Assert.Equal(AcmeJws.Jwk(Key), h.GetProperty("jwk").GetRawText());
            Assert.False(h.TryGetProperty("kid", out _));
        }
        else
        {
            Assert.Equal(kid, h.GetProperty("kid").GetString());
            Assert.False(h.TryGetProperty("jwk", out _)); // RFC 8555 6.2: one or the other
        }
        Assert.Equal(payload ?? "", Encoding.UTF8.GetString(Base64Url.DecodeFromChars(payloadB64))); // POST-as-GET: empty
        var signature = Base64Url.DecodeFromChars(root.GetProperty("signature").GetString()!);
        Assert.Equal(64, signature.Length); // r‖s, not DER
        Assert.True(Key.VerifyData(Encoding.ASCII.GetBytes(protectedB64 + "." + payloadB64), signature, HashAlgorithmName.SHA256,
            DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    [Fact]
    public void The_csr_names_the_domain_and_is_signed_by_the_certificate_key()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = CertificateRequest.LoadSigningRequest(AcmeOrderFlow.Csr("shop.acme.test", key), HashAlgorithmName.SHA256,
            CertificateRequestLoadOptions.UnsafeLoadCertificateExtensions); // requested extensions are read only when asked
        Assert.Equal("CN=shop.acme.test", csr.SubjectName.Name);
        var requested = Assert.Single(csr.CertificateExtensions, e => e.Oid?.Value == "2.5.29.17");
        var san = new X509SubjectAlternativeNameExtension(requested.RawData);
        Assert.Equal(["shop.acme.test"], san.EnumerateDnsNames());
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), csr.PublicKey.ExportSubjectPublicKeyInfo());
    }

    [Fact]
    public void Renewal_comes_at_two_thirds_and_failures_back_off_doubling_to_a_cap()
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(start.AddDays(60), AcmeSchedule.RenewAt(start, start.AddDays(90)));
        var cert = new LbCertificate
        {
            Name = "acme-shop.test", Certificate = "", Key = "",
            Acme = new LbCertificateAcme { Domain = "shop.test", RenewAt = start.AddDays(60) },
        };
        Assert.True(AcmeSchedule.IsDue(null, start));
        Assert.True(AcmeSchedule.IsDue(cert with { Acme = null }, start)); // not one of ours: order ours
        Assert.False(AcmeSchedule.IsDue(cert, start.AddDays(59)));
        Assert.True(AcmeSchedule.IsDue(cert, start.AddDays(60)));
        var (first, max) = (TimeSpan.FromMinutes(5), TimeSpan.FromHours(6));
        Assert.Equal(TimeSpan.Zero, AcmeSchedule.Backoff(0, first, max));
        Assert.Equal(TimeSpan.FromMinutes(5), AcmeSchedule.Backoff(1, first, max));
        Assert.Equal(TimeSpan.FromMinutes(20), AcmeSchedule.Backoff(3, first, max));
        Assert.Equal(max, AcmeSchedule.Backoff(12, first, max));
        Assert.Equal(max, AcmeSchedule.Backoff(500, first, max));
    }

    [Fact]
    public void The_test_dns_answers_a_with_loopback_and_other_types_with_nothing()
    {
        // A query for shop.test, type A (1) and type AAAA (28), class IN, id 0x1234.
        byte[] Query(byte type) => [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, .."shop"u8, 4, .."test"u8, 0, 0, type, 0, 1];
        var a = LoopbackDns.Answer(Query(1))!;
        Assert.Equal([0x12, 0x34], a[..2]);
        Assert.Equal(1, a[7]); // one answer
        Assert.Equal([127, 0, 0, 1], a[^4..]);
        var aaaa = LoopbackDns.Answer(Query(28))!;
        Assert.Equal(0, aaaa[7]);
        Assert.Equal(Query(28).Length, aaaa.Length);
    }

    [Fact]
    public void An_acme_block_is_checked_field_by_field()
    {
        LbDomain Domain(string name, string directory, string email) => new()
        {
            Name = name, Init = "r", Nodes = new() { ["r"] = new LbNode { Type = "respond", Status = 200 } },
            Acme = new LbAcme { Directory = directory, Email = email },
        };
        Assert.Empty(Domain("shop.test", "https://ca.test/dir", "ops@shop.test").Validate());
        Assert.Contains("domain shop.test: acme.directory \"http://ca.test/dir\" must be an absolute https:// URL",
            Domain("shop.test", "http://ca.test/dir", "ops@shop.test").Validate());
        Assert.Contains("domain shop.test: acme.email \"ops\" must be an address like ops@example.com",
            Domain("shop.test", "https://ca.test/dir", "ops").Validate());
        Assert.Contains("domain *.shop.test: acme needs an exact host name (HTTP-01 cannot validate a wildcard)",
            Domain("*.shop.test", "https://ca.test/dir", "ops@shop.test").Validate());
    }
}
