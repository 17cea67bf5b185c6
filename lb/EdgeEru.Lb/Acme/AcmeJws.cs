using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace EdgeEru.Lb.Acme;

/// <summary>
/// RFC 8555's signed requests: flattened JWS JSON with ES256 (P-256, SHA-256, r‖s) over the protected
/// header and the payload. Pure: the same key, URL, nonce and payload give the same signing input.
/// </summary>
internal static class AcmeJws
{
    /// <summary>
    /// The account key's public JWK with its members in lexicographic order and no spaces: the form
    /// RFC 7638 hashes for the thumbprint, and valid as the header's <c>jwk</c> too.
    /// </summary>
    public static string Jwk(ECDsa key)
    {
        var p = key.ExportParameters(includePrivateParameters: false);
        if (p.Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            throw new ArgumentException("ACME account keys are P-256 (ES256)");
        return $$"""{"crv":"P-256","kty":"EC","x":"{{Base64Url.EncodeToString(p.Q.X)}}","y":"{{Base64Url.EncodeToString(p.Q.Y)}}"}""";
    }

    /// <summary>RFC 7638 thumbprint: base64url of SHA-256 over the canonical JWK.</summary>
    public static string Thumbprint(ECDsa key) => Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(Jwk(key))));

    /// <summary>What HTTP-01 serves for <paramref name="token"/> (RFC 8555 8.1): the token, '.', the key's thumbprint.</summary>
    public static string KeyAuthorization(string token, ECDsa key) => token + "." + Thumbprint(key);

    /// <summary>
    /// A signed request body. <paramref name="kid"/> is the account URL; without one the JWK goes in the
    /// header (newAccount). A null <paramref name="payloadJson"/> is POST-as-GET: an empty payload.
    /// </summary>
    public static string Sign(ECDsa key, Uri url, string nonce, string? kid, string? payloadJson)
    {
        var header = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            w.WriteString("alg", "ES256");
            if (kid is null)
            {
                w.WritePropertyName("jwk");
                w.WriteRawValue(Jwk(key));
            }
            else w.WriteString("kid", kid);
            w.WriteString("nonce", nonce);
            w.WriteString("url", url.AbsoluteUri);
            w.WriteEndObject();
        }
        var protectedB64 = Base64Url.EncodeToString(header.WrittenSpan);
        var payloadB64 = payloadJson is null ? "" : Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payloadJson));
        // .NET's ECDsa.SignData gives IEEE P1363 (r‖s, 64 bytes for P-256): JWS's form, not DER.
        var signature = key.SignData(Encoding.ASCII.GetBytes(protectedB64 + "." + payloadB64), HashAlgorithmName.SHA256);
        return $$"""{"protected":"{{protectedB64}}","payload":"{{payloadB64}}","signature":"{{Base64Url.EncodeToString(signature)}}"}""";
    }
}
