using EdgeEru.Registry.Watch;

namespace EdgeEru.Lb.Routing;

/// <summary>Keeps the current <see cref="Routes"/>, rebuilt from each registry snapshot and swapped atomically.</summary>
internal sealed class RoutesHolder : IHostedService, IDisposable
{
    private readonly RegistryWatcher _watcher;
    private readonly ILogger<RoutesHolder> _log;
    private IDisposable? _subscription;
    private Routes _routes = Routes.Empty;
    private readonly object _buildLock = new();

    public RoutesHolder(RegistryWatcher watcher, ILogger<RoutesHolder> log)
    {
        _watcher = watcher;
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
                var next = Routes.Build(snapshot, _routes, (domain, ex) =>
                    _log.LogError("lb domain {Domain}: new graph refused ({Error}); still serving its last good graph",
                        domain, ex.Message));
                Volatile.Write(ref _routes, next);
            }
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        RouteMetrics.Unregister(this);
        _subscription?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _subscription?.Dispose();
}
