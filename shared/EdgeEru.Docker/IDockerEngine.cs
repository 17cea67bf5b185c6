namespace EdgeEru.Docker;

/// <summary>
/// What a deploy asks of a node's engine: <see cref="DockerEngine"/> in production. A seam so that Core's
/// allocation (plan, fence transaction, retries; deploys and reallocs) can be exercised against a real etcd
/// for many random cases without creating containers (tests/EdgeEru.Core.Tests/AllocationPropertyTests).
/// </summary>
public interface IDockerEngine : IDisposable
{
    Task EnsureImageAsync(string image, string? auth, CancellationToken ct = default);

    Task<bool> ImageExistsAsync(string image, CancellationToken ct = default);

    Task<string> CreateAndStartAsync(ContainerSpec spec, CancellationToken ct = default);

    /// <summary>Created, not started (a job's container).</summary>
    Task<string> CreateAsync(ContainerSpec spec, CancellationToken ct = default);

    Task EnsureVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default);

    /// <summary>A routed network's host-local bridge on the node's block (made once, then checked): the addresses held on it.</summary>
    Task<IReadOnlySet<string>> EnsureRoutedNetworkAsync(
        string name, string subnet, string gateway, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default);

    Task<bool> VolumeExistsAsync(string name, CancellationToken ct = default);

    Task<bool> RemoveVolumeAsync(string name, CancellationToken ct = default);

    Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct = default);

    Task<ContainerState?> InspectAsync(string id, CancellationToken ct = default);

    Task<bool> RemoveAsync(string id, TimeSpan stopTimeout, CancellationToken ct = default);

    Task UpdateResourcesAsync(
        string id, long memoryLimit, double cpuQuota, string? cpuset, string? cpusetMems, CancellationToken ct = default);
}
