using System.Security.Cryptography;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Core.Deploy;

/// <summary>
/// Core's write-ahead log in the registry (ERU's WAL): an intent is written before an operation touches Docker
/// and deleted with its last step (in the same transaction where there is one). An intent whose replica died
/// (<c>cores/{core}</c> gone with its lease) is finished or undone by <see cref="Deployer.ReapAsync"/>.
/// </summary>
public sealed class IntentLog(RegistryStore store, string coreId)
{
    /// <summary>The replica whose intents these are.</summary>
    public string CoreId { get; } = coreId;

    public async Task<Intent> BeginAsync(string op, string node, string target, string? ident = null,
        IReadOnlyDictionary<string, string>? addresses = null, CancellationToken ct = default)
    {
        var intent = new Intent
        {
            Id = $"{op}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}", Core = CoreId, Op = op,
            Node = node, Target = target,
            Ident = ident, Addresses = addresses is null ? null : StringMap.From(addresses), CreatedAt = DateTimeOffset.UtcNow,
        };
        await store.PutAsync(Kinds.Intents, intent, ct: ct);
        return intent;
    }

    /// <summary>Records what the operation learnt on the way (a replace's successor).</summary>
    public Task UpdateAsync(Intent intent, CancellationToken ct = default) => store.PutAsync(Kinds.Intents, intent, ct: ct);

    /// <summary>
    /// The operation is done (or undone): its intent goes. Never cancelled: an intent left behind is work for the reaper.
    /// </summary>
    public Task EndAsync(Intent intent) => store.DeleteAsync(Kinds.Intents, intent.Id, CancellationToken.None);
}
