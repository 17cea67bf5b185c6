using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;
using Xunit;

namespace EdgeEru.TestSupport;

/// <summary>
/// A real etcd for a test class (xunit class fixture). Tests isolate themselves with
/// <see cref="NewPrefix"/> so one etcd serves many tests. Fails with the package name if etcd is missing.
/// </summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    private EtcdServer? _server;

    public EtcdServer Server => _server ?? throw new InvalidOperationException("etcd fixture not started");
    public string Url => Server.ClientUrl;

    public async Task InitializeAsync() => _server = await EtcdServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }

    /// <summary>A registry prefix no other test uses.</summary>
    public static string NewPrefix() => "/t" + Guid.NewGuid().ToString("N")[..10];

    public RegistryOptions Options(string? prefix = null, string? url = null) => new()
    {
        Endpoints = url ?? Url,
        Prefix = prefix ?? NewPrefix(),
        RequestTimeout = TimeSpan.FromSeconds(15), // a busy CI machine's etcd can take seconds to fsync; tests time nothing
        KeepAlive = TimeSpan.FromSeconds(2),
    };

    public (EtcdConnection Etcd, RegistryStore Store) Connect(string? prefix = null)
    {
        var etcd = new EtcdConnection(Options(prefix));
        return (etcd, new RegistryStore(etcd));
    }
}
