using Docker.DotNet;
using Docker.DotNet.Models;

namespace EdgeEru.Docker;

/// <summary>A container or volume as a listing shows it: enough to tell what it belongs to and how old it is.</summary>
public sealed record EngineObject(string Id, string Name, DateTimeOffset Created, IReadOnlyDictionary<string, string> Labels);

/// <summary>What a path in a container is (from the archive API's stat).</summary>
public sealed record ContainerPathInfo(string Name, long Size, bool IsDirectory, string? LinkTarget);

/// <summary>Named volumes and files in and out of containers.</summary>
public sealed partial class DockerEngine
{
    /// <summary>Creates a named volume with EdgeEru's labels; an existing one is kept as it is (its data too).</summary>
    public async Task EnsureVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default) =>
        await _client.Volumes.CreateAsync(new VolumesCreateParameters { Name = name, Labels = labels.ToDictionary() }, ct);

    /// <summary>Removes a named volume and its data; false when there was none.</summary>
    public async Task<bool> RemoveVolumeAsync(string name, CancellationToken ct = default)
    {
        try
        {
            await _client.Volumes.RemoveAsync(name, force: false, ct);
            return true;
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>
    /// Containers (running or not) carrying <paramref name="label"/>, with <paramref name="value"/> when given; one call, no inspect.
    /// </summary>
    public async Task<IReadOnlyList<EngineObject>> ContainersWithLabelAsync(
        string label, string? value = null, CancellationToken ct = default)
    {
        var list = await _client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [value is null ? label : $"{label}={value}"] = true },
            },
        }, ct);
        return [.. list.Select(c => new EngineObject(
            c.ID, c.Names.FirstOrDefault()?.TrimStart('/') ?? "", new DateTimeOffset(c.Created.ToUniversalTime()),
            c.Labels?.ToDictionary() ?? []))];
    }

    /// <summary>Volumes carrying <paramref name="label"/>=<paramref name="value"/>.</summary>
    public async Task<IReadOnlyList<EngineObject>> VolumesWithLabelAsync(string label, string value, CancellationToken ct = default)
    {
        var list = await _client.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{label}={value}"] = true },
            },
        }, ct);
        return [.. (list.Volumes ?? []).Select(v => new EngineObject(v.Name, v.Name,
            DateTimeOffset.TryParse(
                v.CreatedAt, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal,
                out var at)
                ? at : DateTimeOffset.MinValue, v.Labels?.ToDictionary() ?? []))];
    }

    /// <summary>Whether the named volume exists on this engine.</summary>
    public async Task<bool> VolumeExistsAsync(string name, CancellationToken ct = default)
    {
        try
        {
            await _client.Volumes.InspectAsync(name, ct);
            return true;
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>What <paramref name="path"/> is in the container; null when it does not exist.</summary>
    public async Task<ContainerPathInfo?> StatAsync(string id, string path, CancellationToken ct = default)
    {
        try
        {
            var r = await _client.Containers.GetArchiveFromContainerAsync(
                id, new GetArchiveFromContainerParameters { Path = path }, statOnly: true, ct);
            return ToInfo(r.Stat);
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>
    /// A tar of <paramref name="path"/> in the container (its last component at the archive's top, like
    /// <c>docker cp</c>), streamed as Docker sends it, and what the path is; null when it does not exist.
    /// </summary>
    public async Task<(ContainerPathInfo Info, Stream Tar)?> ReadArchiveAsync(string id, string path, CancellationToken ct = default)
    {
        try
        {
            var r = await _client.Containers.GetArchiveFromContainerAsync(
                id, new GetArchiveFromContainerParameters { Path = path }, statOnly: false, ct);
            return (ToInfo(r.Stat), r.Stream);
        }
        catch (DockerApiException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>Extracts a tar into the directory <paramref name="directory"/> of the container (which must exist).</summary>
    public Task WriteArchiveAsync(string id, string directory, Stream tar, CancellationToken ct = default) =>
        _client.Containers.ExtractArchiveToContainerAsync(
            id, new ContainerPathStatParameters { Path = directory, AllowOverwriteDirWithFile = false }, tar, ct);

    private static ContainerPathInfo ToInfo(ContainerPathStatResponse stat) =>
        // Go's os.FileMode: the directory bit is the top bit.
        new(stat.Name, stat.Size, ((uint)stat.Mode & 0x8000_0000u) != 0, string.IsNullOrEmpty(stat.LinkTarget) ? null : stat.LinkTarget);
}
