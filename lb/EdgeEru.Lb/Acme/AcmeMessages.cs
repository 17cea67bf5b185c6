using System.Text.Json.Serialization;

namespace EdgeEru.Lb.Acme;

// The RFC 8555 resources this client reads (section 7.1), with only the fields it uses.

internal sealed record AcmeDirectory(Uri NewNonce, Uri NewAccount, Uri NewOrder);

internal sealed record AcmeIdentifier(string Type, string Value);

internal sealed record AcmeOrder(
    string Status, AcmeIdentifier[] Identifiers, Uri[] Authorizations, Uri Finalize, Uri? Certificate, AcmeProblem? Error);

internal sealed record AcmeAuthorization(string Status, AcmeIdentifier Identifier, AcmeChallenge[] Challenges);

internal sealed record AcmeChallenge(string Type, Uri Url, string? Token, string Status, AcmeProblem? Error);

/// <summary>An RFC 7807 problem document as ACME sends them (<c>urn:ietf:params:acme:error:*</c>).</summary>
internal sealed record AcmeProblem(string? Type, string? Detail, int? Status)
{
    public override string ToString() =>
        $"{Type?.Replace("urn:ietf:params:acme:error:", "", StringComparison.Ordinal) ?? "error"}: {Detail}";
}

internal sealed record AcmeNewAccount(string[] Contact, bool TermsOfServiceAgreed);

internal sealed record AcmeNewOrder(AcmeIdentifier[] Identifiers);

internal sealed record AcmeFinalize(string Csr);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, PropertyNameCaseInsensitive = false)]
[JsonSerializable(typeof(AcmeDirectory))]
[JsonSerializable(typeof(AcmeOrder))]
[JsonSerializable(typeof(AcmeAuthorization))]
[JsonSerializable(typeof(AcmeChallenge))]
[JsonSerializable(typeof(AcmeProblem))]
[JsonSerializable(typeof(AcmeNewAccount))]
[JsonSerializable(typeof(AcmeNewOrder))]
[JsonSerializable(typeof(AcmeFinalize))]
internal sealed partial class AcmeJson : JsonSerializerContext;

/// <summary>An ACME request the CA refused, or an order that ended invalid: the problem as the CA put it.</summary>
internal sealed class AcmeException(string message, AcmeProblem? problem = null) : Exception(message)
{
    public AcmeProblem? Problem { get; } = problem;
}
