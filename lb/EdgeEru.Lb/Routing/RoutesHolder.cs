using EdgeEru.Registry.Watch;

namespace EdgeEru.Lb.Routing;

/// <summary>Keeps the current <see cref="Routes"/>, rebuilt from each registry snapshot and swapped atomically.</summary>
internal sealed class RoutesHolder : IHostedService, IDisposable
{
    private readonly RegistryWatcher _watcher;
    private readonly RemoteDatacenters _remotes;
    private readonly ILogger<RoutesHolder> _log;
    private IDisposable? _subscription, _remoteSubscription;
    private Routes _routes = Routes.Empty;
    private readonly object _buildLock = new();

    public RoutesHolder(RegistryWatcher watcher, RemoteDatacenters remotes, ILogger<RoutesHolder> log)
    {
        _watcher = watcher;
        _remotes = remotes;
        _log = log;
    }

    public Routes Current => Volatile.Read(ref _routes);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        RouteMetrics.Register(this);
        // Rebuilding is cheap (pools for the domains' backends only), so it runs on the watcher's publish.
        _subscription = _watcher.Subscribe(snapshot =>
        {
            lock (_buildLock)
            {
                if (_routes != Routes.Empty && !snapshot.Supersedes(_routes.Snapshot)) return;
                Rebuild(snapshot);
            }
        });
        // Another datacenter changed: the same local snapshot, with its pools of the other datacenters rebuilt.
        _remoteSubscription = _remotes.Subscribe(() =>
        {
            lock (_buildLock)
                if (_routes != Routes.Empty) Rebuild(_routes.Snapshot);
        });
        return Task.CompletedTask;
    }

    private void Rebuild(Registry.Snapshot.RegistrySnapshot snapshot)
    {
        var next = Routes.Build(snapshot, _routes, (domain, ex) =>
            _log.LogError("lb domain {Domain}: new graph refused ({Error}); still serving its last good graph",
                domain, ex.Message), _remotes.Current);
        Volatile.Write(ref _routes, next);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        RouteMetrics.Unregister(this);
        _subscription?.Dispose();
        _remoteSubscription?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _subscription?.Dispose();
        _remoteSubscription?.Dispose();
    }
}
