using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry;

/// <summary>A kind of registry value: where it lives under the prefix and how it is encoded.</summary>
public abstract class RegistryKind
{
    private protected RegistryKind(string segment, int version, bool isPrivate)
    {
        Segment = segment;
        Version = version;
        IsPrivate = isPrivate;
    }

    /// <summary>Key segment under the prefix, e.g. <c>workloads</c> or <c>lb/domains</c>.</summary>
    public string Segment { get; }

    /// <summary>Newest schema major version this build reads and writes.</summary>
    public int Version { get; }

    /// <summary>
    /// Kept under <see cref="RegistryKeys.PrivateRoot"/>, outside the range followers list and watch, so that
    /// etcd's roles can make it Core's alone (secrets, registry credentials).
    /// </summary>
    public bool IsPrivate { get; }

    public abstract IRegistryRecord DecodeRecord(ReadOnlySpan<byte> json, string keyName);

    public abstract byte[] EncodeRecord(IRegistryRecord value);

    public override string ToString() => Segment;
}

public sealed class RegistryKind<T> : RegistryKind where T : class, IRegistryRecord
{
    private readonly JsonTypeInfo<T> _typeInfo;

    internal RegistryKind(string segment, int version, JsonTypeInfo<T> typeInfo, bool isPrivate = false)
        : base(segment, version, isPrivate) =>
        _typeInfo = typeInfo;

    /// <summary>Encodes a value after validating it; a value that fails validation never reaches etcd.</summary>
    public byte[] Encode(T value)
    {
        var errors = value.Validate();
        if (errors.Count > 0) throw new RegistryValueException(Segment, value.KeyName, string.Join("; ", errors));
        if (value.V > Version)
            throw new RegistryValueException(Segment, value.KeyName, $"schema version {value.V} is newer than this build's {Version}");
        // Values are read by etcdctl and people, not embedded in HTML: '+' in a key's base64 stays '+', not \u002B.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer,
                   new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            JsonSerializer.Serialize(writer, value, _typeInfo);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes and checks a stored value; anything wrong raises <see cref="RegistryValueException"/>.</summary>
    public T Decode(ReadOnlySpan<byte> json, string keyName)
    {
        T? value;
        try
        {
            value = JsonSerializer.Deserialize(json, _typeInfo);
        }
        catch (JsonException ex)
        {
            var v = PeekVersion(json);
            var why = v > Version ? $"schema version {v} is newer than this build's {Version}" : $"invalid JSON: {ex.Message}";
            throw new RegistryValueException(Segment, keyName, why);
        }
        if (value is null) throw new RegistryValueException(Segment, keyName, "value is JSON null");
        if (value.V > Version)
            throw new RegistryValueException(Segment, keyName, $"schema version {value.V} is newer than this build's {Version}");
        if (value.V < 1) throw new RegistryValueException(Segment, keyName, $"schema version {value.V} is invalid (must be >= 1)");
        if (value.KeyName != keyName)
            throw new RegistryValueException(Segment, keyName, $"value names \"{value.KeyName}\" but is stored under \"{keyName}\"");
        var errors = value.Validate();
        if (errors.Count > 0) throw new RegistryValueException(Segment, keyName, string.Join("; ", errors));
        return value;
    }

    public override IRegistryRecord DecodeRecord(ReadOnlySpan<byte> json, string keyName) => Decode(json, keyName);

    public override byte[] EncodeRecord(IRegistryRecord value) => Encode((T)value);

    private static int PeekVersion(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isV = reader.ValueTextEquals("v"u8);
                reader.Read();
                if (isV && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var v)) return v;
                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }
        return 0;
    }
}

/// <summary>The kinds of value in the registry (docs/registry.md).</summary>
public static class Kinds
{
    public static readonly RegistryKind<Pod> Pods = new("pods", 1, RegistryJsonContext.Default.Pod);
    public static readonly RegistryKind<Node> Nodes = new("nodes", 1, RegistryJsonContext.Default.Node);
    public static readonly RegistryKind<NodeStatus> NodeStatus = new("node-status", 1, RegistryJsonContext.Default.NodeStatus);
    public static readonly RegistryKind<NodeAllocation> Allocations = new("allocations", 1, RegistryJsonContext.Default.NodeAllocation);
    public static readonly RegistryKind<Workload> Workloads = new("workloads", 1, RegistryJsonContext.Default.Workload);
    public static readonly RegistryKind<WorkloadStatus> WorkloadStatus =
        new("workload-status", 1, RegistryJsonContext.Default.WorkloadStatus);
    public static readonly RegistryKind<LbDomain> LbDomains = new("lb/domains", 1, RegistryJsonContext.Default.LbDomain);
    public static readonly RegistryKind<SshUser> SshUsers = new("ssh/users", 1, RegistryJsonContext.Default.SshUser);
    public static readonly RegistryKind<DnsRecordSet> DnsRecords = new("dns/records", 1, RegistryJsonContext.Default.DnsRecordSet);
    public static readonly RegistryKind<LbCertificate> LbCertificates = new("lb/certs", 1, RegistryJsonContext.Default.LbCertificate);

    public static readonly RegistryKind<CoreReplica> Cores = new("cores", 1, RegistryJsonContext.Default.CoreReplica);
    public static readonly RegistryKind<Datacenter> Datacenters = new("datacenter", 1, RegistryJsonContext.Default.Datacenter);
    public static readonly RegistryKind<IpPool> IpPools = new("ip-pools", 1, RegistryJsonContext.Default.IpPool);
    public static readonly RegistryKind<Intent> Intents = new("intents", 1, RegistryJsonContext.Default.Intent, isPrivate: true);
    public static readonly RegistryKind<Secret> Secrets = new("secrets", 1, RegistryJsonContext.Default.Secret, isPrivate: true);
    public static readonly RegistryKind<RegistryAuth> RegistryAuths =
        new("registry-auth", 1, RegistryJsonContext.Default.RegistryAuth, isPrivate: true);
    public static readonly RegistryKind<ApiToken> Tokens = new("tokens", 1, RegistryJsonContext.Default.ApiToken, isPrivate: true);
    public static readonly RegistryKind<LbAcmeAccount> LbAcmeAccounts =
        new("lb/acme-accounts", 1, RegistryJsonContext.Default.LbAcmeAccount, isPrivate: true);
    public static readonly RegistryKind<LbAcmeChallenge> LbAcmeChallenges =
        new("lb/acme-challenges", 1, RegistryJsonContext.Default.LbAcmeChallenge, isPrivate: true);
    public static readonly RegistryKind<LbAcmeLock> LbAcmeLocks =
        new("lb/acme-locks", 1, RegistryJsonContext.Default.LbAcmeLock, isPrivate: true);
    public static readonly RegistryKind<LbAcmeOrderState> LbAcmeOrders =
        new("lb/acme-orders", 1, RegistryJsonContext.Default.LbAcmeOrderState, isPrivate: true);

    /// <summary>The kinds under the prefix, which followers list and watch.</summary>
    public static IReadOnlyList<RegistryKind> All { get; } =
        [Pods, Nodes, NodeStatus, Allocations, Workloads, WorkloadStatus, LbDomains, SshUsers, DnsRecords, LbCertificates, Cores,
            Datacenters, IpPools];

    /// <summary>The kinds under the private root: Core's alone, but for <c>lb/</c> ones (eru-lb's ACME state).</summary>
    public static IReadOnlyList<RegistryKind> Private { get; } =
        [Secrets, RegistryAuths, Intents, Tokens, LbAcmeAccounts, LbAcmeChallenges, LbAcmeLocks, LbAcmeOrders];
}

/// <summary>A registry value that is invalid: names the key and what is wrong.</summary>
public sealed class RegistryValueException(string segment, string keyName, string problem)
    : Exception($"{segment}/{keyName}: {problem}")
{
    public string Segment { get; } = segment;
    public string KeyName { get; } = keyName;
    public string Problem { get; } = problem;
}
