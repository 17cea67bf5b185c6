using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace EdgeEru.Docker;

/// <summary>What to build with the classic builder, beyond the context.</summary>
public sealed record ImageBuild
{
    /// <summary>Names the result gets (NAME[:TAG]); the builder tags only once every step passed.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>The Dockerfile's path inside the context; "" for <c>Dockerfile</c>.</summary>
    public string Dockerfile { get; init; } = "";

    public IReadOnlyDictionary<string, string> BuildArgs { get; init; } = new Dictionary<string, string>();

    /// <summary>Network of RUN steps: "" for the engine's default, <c>none</c>, <c>host</c> or a network's name.</summary>
    public string Network { get; init; } = "";

    public bool NoCache { get; init; }

    /// <summary>Labels put on the resulting image.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Registry host → "user:password" (or an identity token), for base images the engine has to pull.</summary>
    public IReadOnlyDictionary<string, string> Credentials { get; init; } = new Dictionary<string, string>();
}

/// <summary>A finished build: the image's id (sha256:…), its tags, and how many steps the Dockerfile had.</summary>
public sealed record ImageBuildResult(string ImageId, IReadOnlyList<string> Tags, int Steps);

/// <summary>
/// A build that failed: the message says which step and why ("build failed at step 4/4 (RUN exit 3): The command
/// '/bin/sh -c exit 3' returned a non-zero code: 3"); the builder's last output lines are kept for the report.
/// </summary>
public sealed class ImageBuildException(string message, string? step, string? instruction, long? exitCode,
    IReadOnlyList<string> outputTail, Exception? inner = null) : InvalidOperationException(message, inner)
{
    /// <summary>"4/4"; null when the build failed before its first step (no Dockerfile, a parse error).</summary>
    public string? Step { get; } = step;

    /// <summary>The failing step's instruction as the builder printed it ("RUN exit 3").</summary>
    public string? Instruction { get; } = instruction;

    /// <summary>The exit code of a RUN step that failed.</summary>
    public long? ExitCode { get; } = exitCode;

    public IReadOnlyList<string> OutputTail { get; } = outputTail;
}

/// <summary>Image builds: the classic builder through the Engine API (<c>POST /build</c>).</summary>
public sealed partial class DockerEngine
{
    /// <summary>Output lines kept for a failed build's report.</summary>
    private const int TailLines = 12;

    /// <summary>
    /// Builds an image from a context tar (streamed to the engine as it is read, never held whole) with the classic
    /// builder: dockerd 20.10 takes it when the request names no builder version (BuildKit only with version=2, which
    /// needs a session this client does not run), and it works on the rig's vfs storage. Every step's container is
    /// removed, even a failed one's (rm, forcerm); the tags are set only when every step passed. The build's output
    /// lines go to <paramref name="log"/> as they come. A failed step throws <see cref="ImageBuildException"/>, after
    /// the layers this build committed before it are removed again (with the cached ones left alone), so nothing of
    /// the failed build stays on the engine. Base images the engine lacks are pulled with
    /// <see cref="ImageBuild.Credentials"/> (the X-Registry-Config header, as <c>docker build</c> sends it).
    /// </summary>
    public async Task<ImageBuildResult> BuildAsync(Stream contextTar, ImageBuild options, IProgress<string>? log,
        CancellationToken ct = default)
    {
        var parameters = new ImageBuildParameters
        {
            Tags = [.. options.Tags],
            Dockerfile = options.Dockerfile.Length > 0 ? options.Dockerfile : null,
            BuildArgs = options.BuildArgs.Count > 0 ? options.BuildArgs.ToDictionary() : null,
            NetworkMode = options.Network.Length > 0 ? options.Network : null,
            NoCache = options.NoCache,
            Remove = true,
            ForceRemove = true,
            Labels = options.Labels.Count > 0 ? options.Labels.ToDictionary() : null,
        };
        var output = new BuildOutput(log);
        try
        {
            // Docker.DotNet 3.125.15 encodes X-Registry-Config as plain base64 ('+', '/'), which dockerd decodes as base64url,
            // dropping what it cannot read without a word: the header is given here, encoded as dockerd decodes it.
            await _client.Images.BuildImageFromDockerfileAsync(parameters, contextTar, null,
                new Dictionary<string, string> { ["X-Registry-Config"] = RegistryConfig(options.Credentials) }, output, ct);
        }
        catch (DockerApiException ex)
        {
            // dockerd answers with an HTTP error when the build fails before it streamed anything: no such Dockerfile, bad options.
            output.Flush();
            await RemoveLayersAsync(output.NewLayers);
            var detail = ImageTransferErrors.BodyMessage(ex.ResponseBody);
            throw new ImageBuildException($"build failed before its first step: {detail}", null, null, null, output.Tail, ex);
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            await AbandonAsync(output);
            throw;
        }
        output.Flush();
        if (ct.IsCancellationRequested)
        {
            // Docker.DotNet ends the stream quietly on cancellation (it closes the connection, and so dockerd stops the build).
            await AbandonAsync(output);
            ct.ThrowIfCancellationRequested();
        }
        if (output.Error is not null)
        {
            await RemoveLayersAsync(output.NewLayers);
            throw output.Failure(options.Credentials);
        }
        var reference = (options.Tags.Count > 0 ? options.Tags[0] : null) ?? output.BuiltId
            ?? throw new ImageBuildException("the build ended without naming its image", output.Step, output.Instruction, null,
                output.Tail);
        var image = await _client.Images.InspectImageAsync(reference, ct);
        return new ImageBuildResult(image.ID, options.Tags, output.Steps);
    }

    /// <summary>The registry digest (sha256:…) a pushed <paramref name="tag"/> has there, from the image's RepoDigests.</summary>
    public async Task<string?> RepoDigestAsync(string tag, CancellationToken ct = default)
    {
        var image = await _client.Images.InspectImageAsync(tag, ct);
        var (name, _) = SplitImage(tag);
        return image.RepoDigests?.Where(d => d.StartsWith(name + "@", StringComparison.Ordinal)).Select(d => d[(name.Length + 1)..])
            .FirstOrDefault();
    }

    /// <summary>The labels of an image (null when the engine has no such image).</summary>
    public async Task<IReadOnlyDictionary<string, string>?> ImageLabelsAsync(string image, CancellationToken ct = default)
    {
        try
        {
            var inspect = await _client.Images.InspectImageAsync(image, ct);
            return inspect.Config?.Labels?.ToDictionary() ?? [];
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Cleans up after a build its caller cancelled. dockerd kills and removes the running step's container once it sees
    /// the connection close (within a second on the rig); until then that container holds the layer below it, so the
    /// layers are removed after it is gone (removed here if dockerd did not in time).
    /// </summary>
    private async Task AbandonAsync(BuildOutput output)
    {
        try
        {
            if (output.StepContainer is { } id)
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
                while (DateTime.UtcNow < deadline && await InspectAsync(id, CancellationToken.None) is not null)
                    await Task.Delay(200, CancellationToken.None);
                await RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
            }
            await RemoveLayersAsync(output.NewLayers);
        }
        catch (Exception ex) when (ex is DockerApiException or HttpRequestException or IOException or TimeoutException)
        {
            // Best effort: the engine went away as well; the cancellation is what the caller hears about.
        }
    }

    /// <summary>
    /// Removes layers a failed build committed, newest first. Without force and without pruning parents: a layer that
    /// another build has used meanwhile (a child, a tag) is refused by dockerd and stays.
    /// </summary>
    private async Task RemoveLayersAsync(IReadOnlyList<string> layers)
    {
        foreach (var layer in layers.Reverse())
        {
            try
            {
                await _client.Images.DeleteImageAsync(layer, new ImageDeleteParameters { Force = false, NoPrune = true },
                    CancellationToken.None);
            }
            catch (DockerApiException)
            {
                // In use by something else now, or gone: left as it is.
            }
        }
    }

    /// <summary>X-Registry-Config: {"host": {"username", "password", "serveraddress"}} as base64url, which dockerd decodes.</summary>
    internal static string RegistryConfig(IReadOnlyDictionary<string, string> credentials)
    {
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            foreach (var (host, auth) in credentials)
            {
                w.WriteStartObject(host);
                var colon = auth.IndexOf(':', StringComparison.Ordinal);
                if (colon < 0)
                {
                    w.WriteString("identitytoken", auth);
                }
                else
                {
                    w.WriteString("username", auth[..colon]);
                    w.WriteString("password", auth[(colon + 1)..]);
                }
                w.WriteString("serveraddress", host);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Convert.ToBase64String(json.ToArray()).Replace('+', '-').Replace('/', '_');
    }

    /// <summary>
    /// Follows the classic builder's JSON stream: "stream" text split into lines (passed on), the current step
    /// ("Step 3/4 : RUN …"), the layers this build committed (" ---> 3f2a…" after a step that was neither a FROM
    /// nor taken from the cache), base-image pull progress ("status"), and the error that ends a failed build.
    /// </summary>
    private sealed partial class BuildOutput(IProgress<string>? log) : IProgress<JSONMessage>
    {
        private readonly StringBuilder _partial = new();
        private readonly Queue<string> _tail = new();
        private bool _cached;
        private bool _from;

        public string? Step { get; private set; }

        /// <summary>The running step's container (" ---> Running in 3f2a…", until "Removing intermediate container").</summary>
        public string? StepContainer { get; private set; }

        public string? Instruction { get; private set; }
        public int Steps { get; private set; }
        public string? Error { get; private set; }
        public long? Code { get; private set; }

        /// <summary>The short id of "Successfully built 3f2a…".</summary>
        public string? BuiltId { get; private set; }

        public List<string> NewLayers { get; } = [];
        public IReadOnlyList<string> Tail => [.. _tail];

        public void Report(JSONMessage m)
        {
            var error = m.Error?.Message is { Length: > 0 } e ? e : m.ErrorMessage is { Length: > 0 } em ? em : null;
            if (error is not null)
            {
                Flush();
                Error ??= error.Trim();
                if (m.Error?.Code is > 0 and var code) Code = code;
                return;
            }
            if (!string.IsNullOrEmpty(m.Stream))
            {
                _partial.Append(m.Stream);
                var text = _partial.ToString();
                var end = text.LastIndexOf('\n');
                if (end < 0) return;
                _partial.Clear().Append(text.AsSpan(end + 1));
                foreach (var line in text[..end].Split('\n')) Line(line.TrimEnd('\r'));
            }
            else if (!string.IsNullOrEmpty(m.Status) && m.Progress is not { Total: > 0 })
            {
                // A base image being pulled: its steps, without the byte counts of every chunk.
                Line(string.IsNullOrEmpty(m.ID) ? m.Status : $"{m.Status} {m.ID}");
            }
        }

        /// <summary>Passes on a last line that had no newline yet.</summary>
        public void Flush()
        {
            if (_partial.Length == 0) return;
            var rest = _partial.ToString();
            _partial.Clear();
            Line(rest.TrimEnd('\r'));
        }

        private void Line(string line)
        {
            if (StepLine().Match(line) is { Success: true } step)
            {
                (Step, Instruction, _cached) = (step.Groups[1].Value, step.Groups[2].Value.Trim(), false);
                _from = Instruction.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase);
                Steps++;
            }
            else if (line.Trim() == "---> Using cache")
            {
                _cached = true;
            }
            else if (LayerLine().Match(line) is { Success: true } layer && Step is not null && !_cached && !_from)
            {
                NewLayers.Add(layer.Groups[1].Value);
            }
            else if (BuiltLine().Match(line) is { Success: true } built)
            {
                BuiltId = built.Groups[1].Value;
            }
            else if (RunningLine().Match(line) is { Success: true } running)
            {
                StepContainer = running.Groups[1].Value;
            }
            else if (line.StartsWith("Removing intermediate container ", StringComparison.Ordinal))
            {
                StepContainer = null;
            }
            if (line.Length == 0) return;
            _tail.Enqueue(line.Length > 300 ? line[..300] + "…" : line);
            while (_tail.Count > TailLines) _tail.Dequeue();
            log?.Report(line);
        }

        /// <summary>The exception for the error the stream ended with, naming the step; a FROM's pull explained as pulls are.</summary>
        public ImageBuildException Failure(IReadOnlyDictionary<string, string> credentials)
        {
            var why = Error!;
            if (_from && BaseImage(Instruction!) is { } image)
            {
                var host = ImageReference.Parse(image).Registry;
                why = ImageTransferErrors.Explain("pull", image, credentials.GetValueOrDefault(host), why, false, null).Message;
            }
            var where = Step is null ? "before its first step" : $"at step {Step} ({Instruction})";
            return new ImageBuildException($"build failed {where}: {why}", Step, Instruction, Code, Tail);
        }

        /// <summary>The image of "FROM [--platform=…] IMAGE [AS NAME]", unless it is made of build args.</summary>
        private static string? BaseImage(string instruction)
        {
            var image = instruction.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .FirstOrDefault(t => !t.StartsWith("--", StringComparison.Ordinal));
            return image is null || image.Contains('$', StringComparison.Ordinal) ? null : image;
        }

        [GeneratedRegex(@"^Step (\d+/\d+) : (.*)$")]
        private static partial Regex StepLine();

        [GeneratedRegex(@"^ ---> ([0-9a-f]{12,64})$")]
        private static partial Regex LayerLine();

        [GeneratedRegex(@"^ ---> Running in ([0-9a-f]{12,64})$")]
        private static partial Regex RunningLine();

        [GeneratedRegex(@"^Successfully built ([0-9a-f]{12,64})$")]
        private static partial Regex BuiltLine();
    }
}
