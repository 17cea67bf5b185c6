using EdgeEru.Registry.Model;
using Mvccpb;

namespace EdgeEru.Registry.Snapshot;

/// <summary>One decoded change of a registry key: a new value, a deletion, or a value that failed to decode.</summary>
public readonly record struct RegistryChange(RegistryKind Kind, string Name, IRegistryRecord? Value, long Lease, string? Problem = null)
{
    public bool IsDelete => Value is null && Problem is null;

    public static RegistryChange Put(RegistryKind kind, IRegistryRecord value, long lease = 0) => new(kind, value.KeyName, value, lease);
    public static RegistryChange Delete(RegistryKind kind, string name) => new(kind, name, null, 0);

    /// <summary>Decodes an etcd key-value; false for keys of no known kind (ignored).</summary>
    public static bool TryDecode(RegistryKeys keys, KeyValue kv, bool deleted, out RegistryChange change)
    {
        change = default;
        if (!keys.TryParse(kv.Key.ToStringUtf8(), out var kind, out var name)) return false;
        if (deleted)
        {
            change = Delete(kind, name);
            return true;
        }
        try
        {
            change = new RegistryChange(kind, name, kind.DecodeRecord(kv.Value.Span, name), kv.Lease);
        }
        catch (RegistryValueException ex)
        {
            change = new RegistryChange(kind, name, null, kv.Lease, ex.Problem);
        }
        return true;
    }
}
