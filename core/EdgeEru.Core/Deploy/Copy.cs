using System.IO.Pipelines;
using EdgeEru.Docker;
using EdgeEru.Core.Files;
using EdgeEru.Registry;

namespace EdgeEru.Core.Deploy;

/// <summary>Files in and out of a workload's container, as tar through the Docker API (no sftp-server needed in the image).</summary>
public sealed partial class Deployer
{
    /// <summary>
    /// A tar of <paramref name="path"/> in the workload's container, the path's last component at its top;
    /// the caller disposes the stream. <see cref="FileNotFoundException"/> when the path does not exist.
    /// </summary>
    public async Task<(ContainerPathInfo Info, Stream Tar, IDisposable Engine)> CopyFromAsync(
        string workloadId, string path, CancellationToken ct = default)
    {
        if (!path.StartsWith('/')) throw new ArgumentException($"\"{path}\" must be an absolute path in the container");
        var engine = await EngineOfAsync(workloadId, ct);
        try
        {
            var archive = await engine.ReadArchiveAsync(workloadId, path, ct)
                ?? throw new FileNotFoundException($"no {path} in the container");
            return (archive.Info, archive.Tar, engine);
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Puts a tar (one top entry) at <paramref name="path"/> in the workload's container, as <c>docker cp</c>
    /// does: into it when it is a directory, else under that name in its parent directory (which must exist).
    /// </summary>
    public async Task CopyToAsync(string workloadId, string path, Stream tar, CancellationToken ct = default)
    {
        if (!path.StartsWith('/') || path.Split('/').Contains(".."))
            throw new ArgumentException($"\"{path}\" must be an absolute path in the container, without '..'");
        using var engine = await EngineOfAsync(workloadId, ct);
        var target = await engine.StatAsync(workloadId, path, ct);
        if (target is { IsDirectory: true })
        {
            await engine.WriteArchiveAsync(workloadId, path, tar, ct);
            return;
        }
        var trimmed = path.TrimEnd('/');
        var slash = trimmed.LastIndexOf('/');
        var parent = slash <= 0 ? "/" : trimmed[..slash];
        if (await engine.StatAsync(workloadId, parent, ct) is not { IsDirectory: true })
            throw new DirectoryNotFoundException($"no directory {parent} in the container to put {trimmed[(slash + 1)..]} in");
        // Renamed on the way through, so the archive is streamed, never held whole.
        var pipe = new Pipe();
        var rename = Task.Run(async () =>
        {
            try
            {
                await Archives.RenameTopAsync(tar, trimmed[(slash + 1)..], pipe.Writer.AsStream(leaveOpen: true), ct);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
                throw;
            }
        }, ct);
        try
        {
            await engine.WriteArchiveAsync(workloadId, parent, pipe.Reader.AsStream(), ct);
        }
        catch (Exception)
        {
            // When the archive itself was bad, say that, not the upload's broken pipe.
            if (await Task.WhenAny(rename, Task.Delay(1000, CancellationToken.None)) == rename && rename.IsFaulted) await rename;
            throw;
        }
        finally
        {
            await pipe.Reader.CompleteAsync();
        }
        await rename;
    }

    private async Task<DockerEngine> EngineOfAsync(string workloadId, CancellationToken ct)
    {
        var w = await store.GetAsync(Kinds.Workloads, workloadId, ct) ?? throw new KeyNotFoundException($"no workload {workloadId}");
        var node = await store.GetAsync(Kinds.Nodes, w.Value.Node, ct)
            ?? throw new KeyNotFoundException($"node {w.Value.Node} of {w.Value.Name} is gone");
        return engines(node.Value.Endpoint);
    }
}
