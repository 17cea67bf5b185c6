using Docker.DotNet;
using Docker.DotNet.Models;

namespace EdgeEru.Docker;

/// <summary>Running a container to its end: its output as it comes, its exit code.</summary>
public sealed partial class DockerEngine
{
    /// <summary>
    /// Attaches to a created container's stdout and stderr before it starts, so that none of its output is
    /// missed; the stream ends when the container exits.
    /// </summary>
    public Task<MultiplexedStream> AttachAsync(string id, CancellationToken ct = default) =>
        _client.Containers.AttachContainerAsync(id, tty: false, new ContainerAttachParameters
        {
            Stream = true, Stdout = true, Stderr = true,
        }, ct);

    /// <summary>Waits for the container to exit and returns its exit code.</summary>
    public async Task<long> WaitAsync(string id, CancellationToken ct = default) =>
        (await _client.Containers.WaitContainerAsync(id, ct)).StatusCode;

    /// <summary>Sends a signal (SIGKILL by default); a container that is not running is left alone.</summary>
    public async Task KillAsync(string id, string signal = "SIGKILL", CancellationToken ct = default)
    {
        try
        {
            await _client.Containers.KillContainerAsync(id, new ContainerKillParameters { Signal = signal }, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
        {
            // Not running (any more), or gone.
        }
    }
}
