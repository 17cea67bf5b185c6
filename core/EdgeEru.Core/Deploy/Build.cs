using System.Security.Cryptography;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Core.Deploy;

/// <summary>An image build: where, the names of the result, the builder's options, and whether to push.</summary>
public sealed partial record BuildSpec
{
    /// <summary>The label every image built through Core carries: the build's id.</summary>
    public const string BuildLabel = "eru.build";

    /// <summary>The pod whose first alive, schedulable node (by name) builds when no node is named.</summary>
    public string Pod { get; init; } = "";

    /// <summary>The node whose engine builds ("" to let the pod pick).</summary>
    public string Node { get; init; } = "";

    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>The Dockerfile's path inside the context; "" for <c>Dockerfile</c>.</summary>
    public string Dockerfile { get; init; } = "";

    public IReadOnlyDictionary<string, string> BuildArgs { get; init; } = new Dictionary<string, string>();

    /// <summary>Network of RUN steps: "" for the engine's default, <c>none</c>, <c>host</c> or a network's name.</summary>
    public string Network { get; init; } = "";

    /// <summary>Push every tag; without it, the tags whose registry Core has credentials for are pushed.</summary>
    public bool Push { get; init; }

    public bool NoCache { get; init; }

    /// <summary>Every bad field, named.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (Pod.Length == 0 && Node.Length == 0) p.Add("pod or node: name the pod (its first alive, schedulable node builds) or the node");
        if (Pod.Length > 0 && !Names.IsLabel(Pod)) p.Add($"pod \"{Pod}\" must be a DNS label");
        if (Node.Length > 0 && !Names.IsLabel(Node)) p.Add($"node \"{Node}\" must be a DNS label");
        if (Tags.Count == 0) p.Add("tags: name the image at least once (NAME:TAG)");
        for (var i = 0; i < Tags.Count; i++)
        {
            if (TagProblem(Tags[i]) is { } problem) p.Add($"tags[{i}] \"{Tags[i]}\" {problem}");
            else if (Push && RegistryAuth.HostOf(Tags[i]) is null)
                p.Add($"tags[{i}] \"{Tags[i]}\" names no registry host, so it cannot be pushed (it would go to Docker Hub): " +
                    "name it HOST[:PORT]/REPOSITORY:TAG");
        }
        if (Tags.Distinct(StringComparer.Ordinal).Count() != Tags.Count) p.Add("tags: each tag once");
        if (Dockerfile.StartsWith('/') || Dockerfile.Split('/').Contains("..") || Dockerfile.Contains('\0', StringComparison.Ordinal)
            || Dockerfile.Length > 1024)
            p.Add($"dockerfile \"{Dockerfile}\" must be a relative path inside the context, without '..'");
        foreach (var key in BuildArgs.Keys.Where(k => !BuildArgName().IsMatch(k)))
            p.Add($"build_args: \"{key}\" is not a build argument name (letters, digits and '_', not first a digit)");
        if (Network.Length > 0 && !NetworkName().IsMatch(Network))
            p.Add($"network \"{Network}\" must be none, host, default, or a Docker network's name");
        return p;
    }

    /// <summary>Why <paramref name="tag"/> is not an image reference Docker takes as a build tag; null when it is one.</summary>
    public static string? TagProblem(string tag)
    {
        if (tag.Contains('@', StringComparison.Ordinal)) return "is a digest reference: name a tag (NAME:TAG)";
        if (!Reference().IsMatch(tag))
            return "is not a valid image reference: [HOST[:PORT]/]REPOSITORY[:TAG], the repository in lowercase letters, digits and " +
                "separators (. _ __ -), the tag up to 128 of letters, digits, '_', '.', '-'";
        var (name, _) = DockerEngine.SplitImage(tag);
        return name.Length > 255 ? $"has a name of {name.Length} characters; at most 255" : null;
    }

    /// <summary>Docker's reference grammar (distribution/reference) without digests.</summary>
    [GeneratedRegex(@"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*" +
        @"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*" +
        @"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")]
    private static partial Regex Reference();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex BuildArgName();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex NetworkName();
}

/// <summary>A tag pushed to its registry, and the manifest digest the registry has for it.</summary>
public sealed record PushedImage(string Tag, string Digest);

/// <summary>What a build reports as it goes: an output line of the build or of a push, or a tag that was pushed.</summary>
public sealed record BuildProgress(string? Log, PushedImage? Pushed);

/// <summary>
/// How a build ended: the image and where, or why not (<see cref="Refused"/> says whether the request was wrong, something
/// was missing, or the build itself failed, with its step and last output lines).
/// </summary>
public sealed record BuildOutcome(string Node, string ImageId, IReadOnlyList<string> Tags, IReadOnlyList<PushedImage> Pushed,
    string? Error)
{
    public RefusalKind Refused { get; init; }

    /// <summary>The build's id (the <see cref="BuildSpec.BuildLabel"/> label of the image).</summary>
    public string BuildId { get; init; } = "";

    /// <summary>The failed step ("4/4") of a build that failed in one.</summary>
    public string? FailedStep { get; init; }

    /// <summary>The build's last output lines when it failed.</summary>
    public IReadOnlyList<string> OutputTail { get; init; } = [];

    public static BuildOutcome Of(RefusalKind kind, string error, string node = "") => new(node, "", [], [], error) { Refused = kind };
}

/// <summary>Build: an image from a context on one node's engine, then pushed to the registries of its tags.</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// Builds <paramref name="spec"/> from <paramref name="context"/> (a tar, read as the engine takes it) on the named node,
    /// or on the pod's first alive, schedulable node by name; then pushes each tag whose registry host Core has
    /// credentials for, or every tag when <see cref="BuildSpec.Push"/> is set. Output lines and pushed tags go to
    /// <paramref name="progress"/> in order. A failed build leaves no container, no tag and none of its layers; a
    /// failed push leaves the image built and tagged on the node (the report says so).
    /// </summary>
    public async Task<BuildOutcome> BuildAsync(BuildSpec spec, Stream context, Func<BuildProgress, Task> progress,
        CancellationToken ct = default)
    {
        var problems = spec.Problems();
        if (problems.Count > 0) return BuildOutcome.Of(RefusalKind.Invalid, "invalid build: " + string.Join("; ", problems));
        var (node, refusal) = await BuilderAsync(spec, ct);
        if (refusal is not null) return BuildOutcome.Of(refusal.Kind, refusal.Message);
        IReadOnlyDictionary<string, string> credentials;
        try
        {
            credentials = await RegistryCredentialsAsync(ct);
        }
        catch (CryptographicException ex)
        {
            return BuildOutcome.Of(RefusalKind.Precondition, $"registry credentials cannot be opened with Core's key: {ex.Message}");
        }

        var buildId = $"{DateTimeOffset.UtcNow:yyyyMMdd'T'HHmmss'Z'}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        // The engine reports on its reading thread; a channel keeps the order and lets the caller's writes be async.
        var events = Channel.CreateUnbounded<BuildProgress>(new UnboundedChannelOptions { SingleReader = true });
        var pump = Task.Run(async () =>
        {
            await foreach (var e in events.Reader.ReadAllAsync(CancellationToken.None)) await progress(e);
        }, CancellationToken.None);
        var output = new ChannelLog(events.Writer);
        using var engine = engines(node!.Endpoint);
        output.Report($"building on {node.Name} (build {buildId})");
        try
        {
            ImageBuildResult built;
            try
            {
                built = await engine.BuildAsync(context, new ImageBuild
                {
                    Tags = spec.Tags, Dockerfile = spec.Dockerfile, BuildArgs = spec.BuildArgs, Network = spec.Network,
                    NoCache = spec.NoCache,
                    Labels = new Dictionary<string, string> { [BuildSpec.BuildLabel] = buildId }, Credentials = credentials,
                }, output, ct);
            }
            catch (ImageBuildException ex)
            {
                log.LogInformation("build {Build} on {Node} failed: {Error}", buildId, node.Name, ex.Message);
                return BuildOutcome.Of(RefusalKind.Precondition, ex.Message, node.Name) with
                {
                    BuildId = buildId, FailedStep = ex.Step, OutputTail = ex.OutputTail,
                };
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return BuildOutcome.Of(RefusalKind.Precondition,
                    $"node {node.Name}: the Docker engine at {node.Endpoint.Address} failed the build: " +
                    DockerEngine.Explain(ex, node.Endpoint),
                    node.Name) with { BuildId = buildId };
            }
            log.LogInformation("build {Build} on {Node}: {Image} as {Tags}", buildId, node.Name, built.ImageId,
                string.Join(", ", spec.Tags));

            var pushed = new List<PushedImage>();
            foreach (var tag in spec.Tags)
            {
                var host = RegistryAuth.HostOf(tag);
                var auth = host is null ? null : credentials.GetValueOrDefault(host);
                if (!spec.Push && auth is null) continue;
                try
                {
                    await engine.PushAsync(tag, auth, output, ct);
                    var digest = await engine.RepoDigestAsync(tag, ct) ?? "";
                    pushed.Add(new PushedImage(tag, digest));
                    await events.Writer.WriteAsync(new BuildProgress(null, pushed[^1]), ct);
                }
                catch (ImageTransferException ex)
                {
                    var done = pushed.Count > 0 ? $"; pushed before it: {string.Join(", ", pushed.Select(p => p.Tag))}" : "";
                    return BuildOutcome.Of(RefusalKind.Precondition,
                        $"built {built.ImageId} on {node.Name} as {string.Join(", ", spec.Tags)}, but the push failed: {ex.Message}{done}",
                        node.Name) with { BuildId = buildId };
                }
            }
            return new BuildOutcome(node.Name, built.ImageId, spec.Tags, pushed, null) { BuildId = buildId };
        }
        finally
        {
            events.Writer.TryComplete();
            await pump;
        }
    }

    /// <summary>
    /// The node that builds: the named one (it must exist, and be in the pod when one is named), else the pod's first alive,
    /// schedulable one by name.
    /// </summary>
    private async Task<(Node? Node, Refusal? Refusal)> BuilderAsync(BuildSpec spec, CancellationToken ct)
    {
        if (spec.Node.Length > 0)
        {
            var named = await store.GetAsync(Kinds.Nodes, spec.Node, ct);
            if (named is null) return (null, new Refusal(RefusalKind.Invalid, $"node \"{spec.Node}\" does not exist"));
            if (spec.Pod.Length > 0 && named.Value.Pod != spec.Pod)
                return (null, new Refusal(RefusalKind.Invalid, $"node \"{spec.Node}\" is in pod {named.Value.Pod}, not in {spec.Pod}"));
            return (named.Value, null);
        }
        var (nodes, _) = await store.ListAsync(Kinds.Nodes, ct: ct);
        var inPod = nodes.Select(n => n.Value).Where(n => n.Pod == spec.Pod).ToList();
        if (inPod.Count == 0 && await store.GetAsync(Kinds.Pods, spec.Pod, ct) is null)
            return (null, new Refusal(RefusalKind.NotFound, $"pod {spec.Pod} does not exist"));
        var (alive, _) = await store.ListAsync(Kinds.NodeStatus, ct: ct);
        var aliveNames = alive.Select(s => s.Value.Node).ToHashSet(StringComparer.Ordinal);
        var first = inPod.Where(n => !n.Unschedulable && aliveNames.Contains(n.Name)).OrderBy(n => n.Name, StringComparer.Ordinal)
            .FirstOrDefault();
        return first is null
            ? (null, new Refusal(RefusalKind.Precondition, $"pod {spec.Pod} has no alive, schedulable node to build on (name a node)"))
            : (first, null);
    }

    /// <summary>
    /// Registry host → "user:password" for every registry Core has credentials for: base images of any of them may be
    /// pulled during the build (docker build sends all of its configured credentials the same way).
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>> RegistryCredentialsAsync(CancellationToken ct)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Secrets is not { Enabled: true }) return result;
        foreach (var auth in await Secrets.ListRegistryAuthAsync(ct))
            if (await Secrets.CredentialsForAsync(auth.Host + "/_", ct) is { } credentials) result[auth.Host] = credentials;
        return result;
    }

    /// <summary>Output lines into the build's event channel, in the order the engine reports them.</summary>
    private sealed class ChannelLog(ChannelWriter<BuildProgress> writer) : IProgress<string>
    {
        public void Report(string value) => writer.TryWrite(new BuildProgress(value, null));
    }
}
