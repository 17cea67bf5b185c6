using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// The datacenter a registry belongs to (<c>datacenter/{name}</c>, one key, no lease): written by Core from
/// <c>Core:Datacenter</c>. Followers name the local datacenter by it, and check that a remote registry they
/// were pointed at is the datacenter they were told it is (docs/multi-dc.md).
/// </summary>
public sealed record Datacenter : IRegistryRecord
{
    public int V { get; set; } = 1;
    public required string Name { get; init; }
    public DateTimeOffset CreatedAt { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsLabel(Name), $"datacenter name \"{Name}\" must be a DNS label");
        return e;
    }
}
