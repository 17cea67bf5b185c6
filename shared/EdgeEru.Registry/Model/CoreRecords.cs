using System.Text.Json.Serialization;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// A running eru-core replica (<c>cores/{id}</c>), under the replica's lease: it exists while the replica
/// lives. Clients find the API here; the reaper knows by it whose unfinished operations are orphaned.
/// </summary>
public sealed record CoreReplica : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Id { get; init; }

    /// <summary>The API's URLs as clients reach them (Core:Urls, or Core:AdvertiseUrls).</summary>
    public string[] Urls { get; set; } = [];
    public DateTimeOffset StartedAt { get; init; }
    public string? Version { get; init; }

    [JsonIgnore] public string KeyName => Id;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Id), $"core id \"{Id}\" must be 1-253 of [A-Za-z0-9._-]");
        foreach (var u in Urls)
            Names.Require(e, Uri.TryCreate(u, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https",
                $"core {Id}: url \"{u}\" must be http(s)");
        return e;
    }
}

/// <summary>
/// What a Core replica is about to do to Docker and the registry, written before and deleted with the last
/// step (<c>{prefix}-private/intents/{id}</c>, no lease: it outlives a crash). Core's write-ahead log, as in
/// ERU: when the replica that wrote it is gone (no <c>cores/{core}</c>), a reaper finishes or undoes it so
/// that Docker and the registry agree again.
/// </summary>
public sealed record Intent : IRegistryRecord
{
    public const string Create = "create", Remove = "remove", Park = "park", Realloc = "realloc", Job = "job";

    public int V { get; set; } = 1;
    public required string Id { get; init; }

    /// <summary>The replica that wrote it (<c>cores/{core}</c> while it lives).</summary>
    public required string Core { get; init; }

    /// <summary>create, remove, park, realloc or job.</summary>
    [JsonConverter(typeof(PooledStringConverter))] public required string Op { get; init; }
    [JsonConverter(typeof(PooledStringConverter))] public required string Node { get; init; }

    /// <summary>The workload (remove, park, realloc, job), or the container's name (create).</summary>
    public required string Target { get; init; }

    /// <summary>create: the instance's ident (its volumes carry it); park: the successor's, once known.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Ident { get; init; }

    /// <summary>park with keep-ip: the addresses the old one let go of (network → "IPV4" or "IPV4,IPV6").</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public StringMap? Addresses { get; init; }
    public DateTimeOffset CreatedAt { get; init; }

    [JsonIgnore] public string KeyName => Id;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsId(Id), $"intent id \"{Id}\" must be 1-253 of [A-Za-z0-9._-]");
        Names.Require(e, Names.IsId(Core), $"intent {Id}: core \"{Core}\" is not a core id");
        Names.Require(e, Op is Create or Remove or Park or Realloc or Job,
            $"intent {Id}: op \"{Op}\" must be create, remove, park, realloc or job");
        Names.Require(e, Names.IsLabel(Node), $"intent {Id}: node \"{Node}\" must be a DNS label");
        Names.Require(e, Names.IsId(Target), $"intent {Id}: target \"{Target}\" is not a workload id or name");
        Names.Require(e, Ident is null || Names.IsLabel(Ident), $"intent {Id}: ident \"{Ident}\" must be a DNS label");
        return e;
    }
}
