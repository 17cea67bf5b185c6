using System.Text.Json;
using System.Text.RegularExpressions;
using Kind = EdgeEru.Docker.ImageTransferFailure;

namespace EdgeEru.Docker;

/// <summary>Why a pull or push failed, in the terms one acts on.</summary>
public enum ImageTransferFailure
{
    Other,

    /// <summary>The registry refused the credentials that were given.</summary>
    Unauthorized,

    /// <summary>The registry wants credentials and none (or not a user and password) were given.</summary>
    CredentialsMissing,

    /// <summary>The engine does not trust the registry's TLS certificate.</summary>
    UntrustedCertificate,

    /// <summary>The registry has no such repository or tag (pull), or the engine has no such image (push).</summary>
    NotFound,

    /// <summary>The engine could not connect to the registry.</summary>
    Unreachable,
}

/// <summary>A pull or push that failed; the message names the image, the registry and what to do.</summary>
public sealed class ImageTransferException(string message, ImageTransferFailure failure, string registry, Exception? inner = null)
    : InvalidOperationException(message, inner)
{
    public ImageTransferFailure Failure { get; } = failure;

    /// <summary>The registry host ("IP:port", "docker.io") the image lives in.</summary>
    public string Registry { get; } = registry;
}

/// <summary>An image reference split the way Docker does: registry host, repository path, tag.</summary>
public sealed record ImageReference(string Registry, string Name, string Tag)
{
    /// <summary>Docker Hub, where a name without a registry part goes.</summary>
    public const string DockerHub = "docker.io";

    /// <summary>
    /// The first path part is a registry when it has a '.' or ':' or is "localhost" (Docker's rule); a colon
    /// after the last slash starts the tag. Digest references (@sha256:...) keep the digest in <see cref="Name"/>, tag "".
    /// </summary>
    public static ImageReference Parse(string image)
    {
        var (name, tag) = DockerEngine.SplitImage(image);
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var first = slash < 0 ? "" : name[..slash];
        var isRegistry = first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal)
            || first == "localhost";
        var registry = isRegistry ? first : DockerHub;
        return new ImageReference(registry, name, tag);
    }
}

/// <summary>
/// Turns what dockerd 20.10 says about a failed pull or push into a message naming the registry and the fix.
/// dockerd gives no error codes, only the registry client's text, so this matches on it. What it says
/// (checked against docker-registry 2.8 on the test rig):
/// <list type="bullet">
/// <item>pull, before any byte is streamed: an HTTP error, 500 with {"message": "unauthorized: authentication required"} for
/// wrong credentials, "Head \"https://H/v2/...\": no basic auth credentials" for none, "Get \"https://H/v2/\": x509:
/// certificate signed by unknown authority" for an untrusted CA, and 404 "manifest for H/R:T not found: manifest unknown"
/// for a missing tag or repository;</item>
/// <item>push, and a pull that fails after it started (a layer the registry lost: "unknown blob"; a corrupt one:
/// "filesystem layer verification failed for digest sha256:..."): HTTP 200 and a JSON message with "error" in the
/// stream; push errors use the same texts as pulls; a push of an image the engine lacks says
/// "An image does not exist locally with the tag: ...".</item>
/// </list>
/// </summary>
public static partial class ImageTransferErrors
{
    /// <summary>Where dockerd looks for a registry's CA (compiled in; not configurable).</summary>
    public const string EngineCertsRoot = "/etc/docker/certs.d";

    public static ImageTransferException Explain(string verb, string image, string? auth, string dockerMessage, bool notFoundStatus,
        Exception? inner)
    {
        var reference = ImageReference.Parse(image);
        var host = reference.Registry;
        var detail = StripRequest().Replace(dockerMessage.Trim(), "");
        var who = Who(auth);
        var lower = detail.ToLowerInvariant();
        bool Says(params string[] words) => words.Any(w => lower.Contains(w, StringComparison.Ordinal));
        ImageTransferException Fail(Kind failure, string what) => new($"{verb} {image}: {what}", failure, host, inner);
        var add = $"add them with `eru registry-auth add {host} --user USER --password-stdin`";

        if (Says("does not exist locally"))
            return Fail(Kind.NotFound, $"the engine has no image {image} to push ({detail})");
        if (Says("x509:", "tls:"))
        {
            return Fail(Kind.UntrustedCertificate, $"the engine does not trust the certificate of the registry {host} ({detail}): " +
                $"the certificate must name {host} and chain to a CA the engine trusts; put that CA at {EngineCertsRoot}/{host}/ca.crt " +
                "on the engine's host (dockerd reads it on every pull and push, no restart needed)");
        }
        if (Says("no basic auth credentials"))
        {
            if (who is null)
                return Fail(Kind.CredentialsMissing, $"the registry {host} needs credentials and none were given ({detail}): {add}");
            if (auth!.Contains(':', StringComparison.Ordinal))
                return Fail(Kind.Other, $"the engine did not send {who} to the registry {host} ({detail})");
            return Fail(Kind.CredentialsMissing, $"the registry {host} needs a user and password, not an identity token ({detail}): " +
                add);
        }
        if (Says("unauthorized", "denied", "authentication required"))
        {
            return who is null
                ? Fail(Kind.CredentialsMissing, $"the registry {host} refused access without credentials ({detail}): " +
                    $"if the image is private, {add}")
                : Fail(Kind.Unauthorized, $"the registry {host} refused {who} ({detail})");
        }
        if (Says("connection refused", "no route to host", "i/o timeout", "no such host", "network is unreachable"))
            return Fail(Kind.Unreachable, $"the engine cannot reach the registry {host} ({detail})");
        if (notFoundStatus || Says("manifest unknown", "name unknown", "not found"))
            return Fail(Kind.NotFound, $"the registry {host} has no {RepositoryAndTag(reference)} ({detail})");
        if (Says("verification failed"))
            return Fail(Kind.Other, $"the registry {host} sent a layer whose content does not match its digest ({detail})");
        if (Says("unknown blob", "blob unknown"))
            return Fail(Kind.Other, $"the registry {host} lacks a layer of {RepositoryAndTag(reference)} ({detail})");
        return Fail(Kind.Other, $"the registry {host} or the engine failed: {detail}");
    }

    /// <summary>The text of dockerd's error body ({"message": "..."}), or the body itself.</summary>
    public static string BodyMessage(string? body)
    {
        if (string.IsNullOrWhiteSpace(body)) return "no details";
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
                return m.GetString() ?? body;
        }
        catch (JsonException)
        {
        }
        return body.Trim();
    }

    /// <summary>"the credentials of user \"alice\"", "the identity token", or null for no credentials.</summary>
    private static string? Who(string? auth)
    {
        if (string.IsNullOrEmpty(auth)) return null;
        var colon = auth.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? "the identity token" : $"the credentials of user \"{auth[..colon]}\"";
    }

    private static string RepositoryAndTag(ImageReference r)
    {
        var repository = r.Registry != ImageReference.DockerHub && r.Name.StartsWith(r.Registry + "/", StringComparison.Ordinal)
            ? r.Name[(r.Registry.Length + 1)..]
            : r.Name;
        return r.Tag.Length > 0 ? $"{repository}:{r.Tag}" : repository;
    }

    /// <summary>The Go HTTP client's `Get "https://...": ` prefix: the registry is named in the message already.</summary>
    [GeneratedRegex("^(Get|Head|Post|Put|Patch|Delete) \"[^\"]*\": ")]
    private static partial Regex StripRequest();
}
