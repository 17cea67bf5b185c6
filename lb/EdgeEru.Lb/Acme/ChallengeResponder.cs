using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Lb.Acme;

/// <summary>
/// Answers <c>GET /.well-known/acme-challenge/{token}</c> on the traffic ports from the key authorization
/// in the registry, so whichever replica the CA reaches answers for the one that ordered. Read from etcd
/// on request (challenges are rare and short-lived, and not in followers' snapshots); a few at a time, so a
/// flood of such requests cannot flood etcd.
/// </summary>
internal sealed class ChallengeResponder(RegistryStore store, ILogger<ChallengeResponder> log) : IDisposable
{
    public const string PathPrefix = "/.well-known/acme-challenge/";

    private readonly SemaphoreSlim _reads = new(4);

    public static bool IsChallenge(string? path) => path is not null && path.StartsWith(PathPrefix, StringComparison.Ordinal);

    public async Task AnswerAsync(HttpContext context)
    {
        var token = context.Request.Path.Value![PathPrefix.Length..];
        if (!LbAcmeChallenge.IsToken(token))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        if (!await _reads.WaitAsync(TimeSpan.FromSeconds(2), context.RequestAborted))
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }
        Versioned<LbAcmeChallenge>? challenge;
        try
        {
            challenge = await store.GetAsync(Kinds.LbAcmeChallenges, token, context.RequestAborted);
        }
        catch (Exception ex) when (ex is Grpc.Core.RpcException or RegistryValueException)
        {
            log.LogWarning("ACME challenge {Token}: cannot read it from the registry: {Error}", token, ex.Message);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }
        finally
        {
            _reads.Release();
        }
        // The CA asks for the domain's name: a token is answered only for the host it was ordered for.
        if (challenge is null || !string.Equals(challenge.Value.Domain, context.Request.Host.Host, StringComparison.OrdinalIgnoreCase))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        log.LogInformation("ACME challenge for {Domain} answered (token {Token})", challenge.Value.Domain, token);
        context.Response.ContentType = "application/octet-stream";
        await context.Response.WriteAsync(challenge.Value.KeyAuthorization, context.RequestAborted);
    }

    public void Dispose() => _reads.Dispose();
}
