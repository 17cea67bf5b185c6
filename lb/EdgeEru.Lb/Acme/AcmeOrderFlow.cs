using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EdgeEru.Lb.Acme;

/// <summary>Where an order puts and takes away HTTP-01 answers (the registry, so that every replica serves them).</summary>
internal interface IChallengeBoard
{
    Task PublishAsync(string token, string keyAuthorization, string domain, CancellationToken ct);
    Task WithdrawAsync(string token, CancellationToken ct);
}

/// <summary>A certificate an order brought: the PEM chain (leaf first), its new key, and its validity.</summary>
internal sealed record IssuedCertificate(string ChainPem, string KeyPem, DateTimeOffset NotBefore, DateTimeOffset NotAfter, string Issuer);

/// <summary>
/// One certificate for one domain, RFC 8555 section 7.4 step by step: newOrder, each authorization's
/// HTTP-01 challenge published and answered, polled until valid, finalize with a CSR for a fresh P-256
/// key, polled until the certificate is ready, then downloaded.
/// </summary>
internal sealed class AcmeOrderFlow(AcmeClient client, IChallengeBoard board, ECDsa accountKey, TimeSpan poll, TimeSpan patience)
{
    public async Task<IssuedCertificate> IssueAsync(string domain, CancellationToken ct)
    {
        var (order, orderUrl) = await client.NewOrderAsync(domain, ct);
        var published = new List<string>();
        try
        {
            foreach (var authUrl in order.Authorizations)
            {
                var auth = await client.AuthorizationAsync(authUrl, ct);
                if (auth.Status == "valid") continue; // reused by the CA
                var challenge = auth.Challenges.FirstOrDefault(c => c.Type == "http-01")
                    ?? throw new AcmeException($"the CA offers no http-01 challenge for {auth.Identifier.Value}");
                if (challenge.Token is null || !EdgeEru.Registry.Model.LbAcmeChallenge.IsToken(challenge.Token))
                    throw new AcmeException($"the CA's http-01 token for {auth.Identifier.Value} is not base64url");
                var answer = AcmeJws.KeyAuthorization(challenge.Token, accountKey);
                await board.PublishAsync(challenge.Token, answer, auth.Identifier.Value, ct);
                published.Add(challenge.Token);
                await client.RespondAsync(challenge.Url, ct);
                auth = await PollAsync(() => client.AuthorizationAsync(authUrl, ct), a => a.Status != "pending", "authorization", ct);
                if (auth.Status != "valid")
                {
                    var why = auth.Challenges.FirstOrDefault(c => c.Type == "http-01")?.Error;
                    throw new AcmeException($"authorization of {auth.Identifier.Value} is {auth.Status}: {why}", why);
                }
            }
            order = await PollAsync(() => client.OrderAsync(orderUrl, ct), o => o.Status != "pending", "order", ct);
            if (order.Status != "ready" && order.Status != "valid")
                throw new AcmeException($"order for {domain} is {order.Status}: {order.Error}", order.Error);

            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            if (order.Status == "ready") order = await client.FinalizeAsync(order.Finalize, Csr(domain, key), ct);
            order = await PollAsync(() => client.OrderAsync(orderUrl, ct), o => o.Status is not ("processing" or "ready"), "finalize", ct);
            if (order.Status != "valid" || order.Certificate is null)
                throw new AcmeException($"order for {domain} ended {order.Status}: {order.Error}", order.Error);
            var chain = await client.DownloadAsync(order.Certificate, ct);
            using var leaf = X509Certificate2.CreateFromPem(chain);
            return new IssuedCertificate(chain, key.ExportPkcs8PrivateKeyPem(), leaf.NotBefore.ToUniversalTime(),
                leaf.NotAfter.ToUniversalTime(), leaf.Issuer);
        }
        finally
        {
            foreach (var token in published)
            {
                try
                {
                    await board.WithdrawAsync(token, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The challenge key lives under the order's lease as well: it goes when the lease does.
                }
            }
        }
    }

    /// <summary>A CSR for <paramref name="domain"/> (CN and the one DNS SAN) signed with the certificate's key.</summary>
    public static byte[] Csr(string domain, ECDsa key)
    {
        var request = new CertificateRequest(new X500DistinguishedName($"CN={domain}"), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(domain);
        request.CertificateExtensions.Add(san.Build());
        return request.CreateSigningRequest();
    }

    private async Task<T> PollAsync<T>(Func<Task<T>> fetch, Func<T, bool> done, string what, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + patience;
        while (true)
        {
            var value = await fetch();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new AcmeException($"the {what} did not settle within {patience.TotalSeconds:0} s");
            await Task.Delay(poll, ct);
        }
    }
}
