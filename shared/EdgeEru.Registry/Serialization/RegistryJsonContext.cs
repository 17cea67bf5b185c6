using System.Text.Json.Serialization;
using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Serialization;

/// <summary>Source-generated JSON for every registry value: snake_case, no nulls written.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectRequiredConstructorParameters = true,
    AllowTrailingCommas = false,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(Pod))]
[JsonSerializable(typeof(Node))]
[JsonSerializable(typeof(NodeStatus))]
[JsonSerializable(typeof(NodeAllocation))]
[JsonSerializable(typeof(Workload))]
[JsonSerializable(typeof(WorkloadStatus))]
[JsonSerializable(typeof(SshUser))]
[JsonSerializable(typeof(DnsRecordSet))]
[JsonSerializable(typeof(LbDomain))]
[JsonSerializable(typeof(LbCertificate))]
[JsonSerializable(typeof(Secret))]
[JsonSerializable(typeof(RegistryAuth))]
[JsonSerializable(typeof(ApiToken))]
[JsonSerializable(typeof(CoreReplica))]
[JsonSerializable(typeof(Datacenter))]
[JsonSerializable(typeof(IpPool))]
[JsonSerializable(typeof(Intent))]
[JsonSerializable(typeof(LbAcmeAccount))]
[JsonSerializable(typeof(LbAcmeChallenge))]
[JsonSerializable(typeof(LbAcmeLock))]
[JsonSerializable(typeof(LbAcmeOrderState))]
public sealed partial class RegistryJsonContext : JsonSerializerContext;
