using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace EdgeEru.Lb.Acme;

/// <summary>
/// The ACME protocol over HTTP for one account key at one CA (RFC 8555 sections 7.1-7.4): the directory,
/// nonces (kept from each answer's Replay-Nonce, fetched from newNonce when none is left, a request retried
/// on badNonce), account, orders, authorizations, challenges, finalize and the certificate download.
/// </summary>
internal sealed class AcmeClient(HttpClient http, Uri directoryUrl, ECDsa accountKey)
{
    private const int BadNonceRetries = 5;
    private AcmeDirectory? _directory;
    private string? _nonce;

    /// <summary>The account URL (the JWS "kid"); set by <see cref="AccountAsync"/>.</summary>
    public string? AccountUrl { get; set; }

    public async Task<AcmeDirectory> DirectoryAsync(CancellationToken ct)
    {
        if (_directory is not null) return _directory;
        using var response = await http.GetAsync(directoryUrl, ct);
        await EnsureAsync(response, "directory", ct);
        _directory = await response.Content.ReadFromJsonAsync(AcmeJson.Default.AcmeDirectory, ct)
            ?? throw new AcmeException($"the directory at {directoryUrl} is empty");
        return _directory;
    }

    /// <summary>Creates the account, or finds the one this key has (the CA answers 200 with its URL).</summary>
    public async Task<string> AccountAsync(string email, CancellationToken ct)
    {
        var dir = await DirectoryAsync(ct);
        var body = JsonSerializer.Serialize(new AcmeNewAccount(["mailto:" + email], TermsOfServiceAgreed: true),
            AcmeJson.Default.AcmeNewAccount);
        using var response = await PostAsync(dir.NewAccount, body, useJwk: true, ct);
        AccountUrl = response.Headers.Location?.AbsoluteUri ?? throw new AcmeException("newAccount answered without a Location");
        return AccountUrl;
    }

    public async Task<(AcmeOrder Order, Uri Url)> NewOrderAsync(string domain, CancellationToken ct)
    {
        var dir = await DirectoryAsync(ct);
        var body = JsonSerializer.Serialize(new AcmeNewOrder([new AcmeIdentifier("dns", domain)]), AcmeJson.Default.AcmeNewOrder);
        using var response = await PostAsync(dir.NewOrder, body, useJwk: false, ct);
        var url = response.Headers.Location ?? throw new AcmeException("newOrder answered without a Location");
        return (await ReadAsync(response, AcmeJson.Default.AcmeOrder, ct), url);
    }

    public Task<AcmeOrder> OrderAsync(Uri url, CancellationToken ct) => PostAsGetAsync(url, AcmeJson.Default.AcmeOrder, ct);

    public Task<AcmeAuthorization> AuthorizationAsync(Uri url, CancellationToken ct) =>
        PostAsGetAsync(url, AcmeJson.Default.AcmeAuthorization, ct);

    /// <summary>Tells the CA the challenge is ready to be checked (an empty object as payload).</summary>
    public async Task<AcmeChallenge> RespondAsync(Uri challenge, CancellationToken ct)
    {
        using var response = await PostAsync(challenge, "{}", useJwk: false, ct);
        return await ReadAsync(response, AcmeJson.Default.AcmeChallenge, ct);
    }

    public async Task<AcmeOrder> FinalizeAsync(Uri finalize, byte[] csrDer, CancellationToken ct)
    {
        var csr = System.Buffers.Text.Base64Url.EncodeToString(csrDer);
        var body = JsonSerializer.Serialize(new AcmeFinalize(csr), AcmeJson.Default.AcmeFinalize);
        using var response = await PostAsync(finalize, body, useJwk: false, ct);
        return await ReadAsync(response, AcmeJson.Default.AcmeOrder, ct);
    }

    /// <summary>The issued chain as PEM, leaf first (application/pem-certificate-chain).</summary>
    public async Task<string> DownloadAsync(Uri certificate, CancellationToken ct)
    {
        using var response = await PostAsync(certificate, null, useJwk: false, ct, accept: "application/pem-certificate-chain");
        return await response.Content.ReadAsStringAsync(ct);
    }

    private async Task<T> PostAsGetAsync<T>(Uri url, JsonTypeInfo<T> type, CancellationToken ct)
    {
        using var response = await PostAsync(url, null, useJwk: false, ct);
        return await ReadAsync(response, type, ct);
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, CancellationToken ct) =>
        await response.Content.ReadFromJsonAsync(type, ct)
        ?? throw new AcmeException($"{response.RequestMessage?.RequestUri} answered null");

    /// <summary>A signed POST; a badNonce answer is retried with the fresh nonce it carries (RFC 8555 6.5).</summary>
    private async Task<HttpResponseMessage> PostAsync(Uri url, string? payload, bool useJwk, CancellationToken ct, string? accept = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            var nonce = await NonceAsync(ct);
            var kid = useJwk ? null : AccountUrl ?? throw new InvalidOperationException("no ACME account yet");
            using var request = new HttpRequestMessage(HttpMethod.Post, url)
            {
                Content = new StringContent(AcmeJws.Sign(accountKey, url, nonce, kid, payload), Encoding.UTF8),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/jose+json");
            if (accept is not null) request.Headers.Accept.ParseAdd(accept);
            var response = await http.SendAsync(request, ct);
            KeepNonce(response);
            if (response.IsSuccessStatusCode) return response;
            var problem = await ProblemAsync(response, ct);
            response.Dispose();
            if (problem?.Type == "urn:ietf:params:acme:error:badNonce" && attempt < BadNonceRetries) continue;
            throw new AcmeException($"{url.AbsolutePath} answered {(int)response.StatusCode}: {problem}", problem);
        }
    }

    private async Task<string> NonceAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _nonce, null) is { } kept) return kept;
        var dir = await DirectoryAsync(ct);
        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, dir.NewNonce), ct);
        await EnsureAsync(response, "newNonce", ct);
        return response.Headers.TryGetValues("Replay-Nonce", out var v) ? v.First()
            : throw new AcmeException("newNonce gave no Replay-Nonce");
    }

    private void KeepNonce(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues("Replay-Nonce", out var v)) _nonce = v.First();
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        throw new AcmeException($"{what} answered {(int)response.StatusCode}: {await ProblemAsync(response, ct)}");
    }

    private static async Task<AcmeProblem?> ProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            return response.Content.Headers.ContentLength == 0 ? null
                : await response.Content.ReadFromJsonAsync(AcmeJson.Default.AcmeProblem, ct);
        }
        catch (JsonException)
        {
            return new AcmeProblem(null, $"HTTP {(int)response.StatusCode}", (int)response.StatusCode);
        }
    }

}
