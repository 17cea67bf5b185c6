using System.Collections.Concurrent;
using Docker.DotNet;
using EdgeEru.Docker;
using EdgeEru.Registry.Model;

namespace EdgeEru.Mimiron.Docker;

/// <summary>One Docker Engine client per node endpoint, made on first use and kept.</summary>
public sealed class DockerClients : IDisposable
{
    private readonly ConcurrentDictionary<string, DockerClient> _clients = new(StringComparer.Ordinal);

    public DockerClient For(DockerEndpoint endpoint)
    {
        // No overall timeout: an exec's attach lasts as long as the session.
        return _clients.GetOrAdd(endpoint.Address, _ => DockerConnections.Configure(endpoint, Timeout.InfiniteTimeSpan).CreateClient());
    }

    public void Dispose()
    {
        foreach (var c in _clients.Values) c.Dispose();
    }
}
