using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Lb.Acme;

/// <summary>
/// HTTP-01 answers kept in the registry (<c>lb/acme-challenges/{token}</c>) for every replica's
/// <see cref="ChallengeResponder"/>, under the ordering replica's lease: they go with the order, or with the replica.
/// </summary>
internal sealed class RegistryChallengeBoard(RegistryStore store, long lease) : IChallengeBoard
{
    public Task PublishAsync(string token, string keyAuthorization, string domain, CancellationToken ct) =>
        store.PutAsync(Kinds.LbAcmeChallenges, new LbAcmeChallenge { Token = token, KeyAuthorization = keyAuthorization, Domain = domain },
            lease, ct);

    public Task WithdrawAsync(string token, CancellationToken ct) => store.DeleteAsync(Kinds.LbAcmeChallenges, token, ct);
}
