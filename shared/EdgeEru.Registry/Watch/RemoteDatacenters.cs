using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Registry.Watch;

/// <summary>Another datacenter's registry as a follower last saw it.</summary>
/// <param name="Name">The datacenter's name, as configured and as its registry names itself.</param>
/// <param name="Snapshot">Its latest snapshot (kept while its etcd is away: a WAN partition leaves the last one).</param>
/// <param name="InTouch">Whether the watch on its etcd works now.</param>
public sealed record DatacenterSnapshot(string Name, RegistrySnapshot Snapshot, bool InTouch);

/// <summary>Where a follower finds another datacenter's registry (Registry:Datacenters:N: Name, Endpoints, Prefix, TLS files).</summary>
public sealed record RemoteDatacenter(string Name, RegistryOptions Options);

/// <summary>
/// The registries of other datacenters a follower watches: read-only (no write ever crosses the WAN), one
/// <see cref="RegistryWatcher"/> each, in the configured order, which is the failover order (docs/multi-dc.md). A
/// registry that names another datacenter than the one configured (or none) is not used, and said so.
/// </summary>
public sealed class RemoteDatacenters : IAsyncDisposable
{
    private readonly (RemoteDatacenter Remote, EtcdConnection Etcd, RegistryWatcher Watcher)[] _remotes;
    private readonly ILogger _log;
    private readonly object _lock = new();
    private readonly HashSet<string> _misnamed = [];
    private Action[] _subscribers = [];
    private IReadOnlyList<DatacenterSnapshot> _current = [];
    private readonly List<IDisposable> _subscriptions = [];

    public RemoteDatacenters(IReadOnlyList<RemoteDatacenter> remotes, ILoggerFactory logs)
    {
        _log = logs.CreateLogger<RemoteDatacenters>();
        _remotes = [.. remotes.Select(r =>
        {
            var etcd = new EtcdConnection(r.Options);
            return (r, etcd, new RegistryWatcher(etcd, logs.CreateLogger<RegistryWatcher>(), r.Name));
        })];
    }

    /// <summary>The problems of a list of remote datacenters (names must be DNS labels, once each, not the local one).</summary>
    public static IEnumerable<string> Problems(IReadOnlyList<RemoteDatacenter> remotes)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < remotes.Count; i++)
        {
            var r = remotes[i];
            if (!Names.IsLabel(r.Name)) yield return $"Registry:Datacenters:{i}:Name \"{r.Name}\" must be a DNS label";
            else if (!seen.Add(r.Name)) yield return $"Registry:Datacenters: datacenter {r.Name} is listed twice";
            string? problem = null;
            try
            {
                r.Options.ParseEndpoints();
                _ = new RegistryKeys(r.Options.Prefix);
            }
            catch (ArgumentException ex)
            {
                problem = ex.Message;
            }
            if (problem is not null) yield return $"Registry:Datacenters:{i} ({r.Name}): {problem}";
        }
    }

    /// <summary>The usable remote datacenters in failover order: those whose registry was read and names itself as configured.</summary>
    public IReadOnlyList<DatacenterSnapshot> Current => Volatile.Read(ref _current);

    /// <summary>How many remote datacenters are configured (used or not).</summary>
    public int Configured => _remotes.Length;

    /// <summary>Calls <paramref name="onChange"/> (on a watcher's loop: keep it short) after any remote snapshot changes.</summary>
    public IDisposable Subscribe(Action onChange)
    {
        lock (_lock) _subscribers = [.. _subscribers, onChange];
        return new Subscription(this, onChange);
    }

    public void Start()
    {
        foreach (var (remote, _, watcher) in _remotes)
        {
            _subscriptions.Add(watcher.Subscribe(_ => Publish()));
            watcher.Start();
            _log.LogInformation("following datacenter {Datacenter}'s registry at {Endpoints} (prefix {Prefix}), read-only",
                remote.Name, remote.Options.Endpoints, remote.Options.Prefix);
        }
    }

    /// <summary>Rebuilds <see cref="Current"/> from every watcher's latest snapshot, then tells the subscribers.</summary>
    private void Publish()
    {
        Action[] subscribers;
        lock (_lock)
        {
            var list = new List<DatacenterSnapshot>(_remotes.Length);
            foreach (var (remote, _, watcher) in _remotes)
            {
                if (!watcher.Ready.IsCompleted) continue;
                var snapshot = watcher.Current;
                if (snapshot.Datacenter != remote.Name)
                {
                    if (_misnamed.Add(remote.Name))
                        _log.LogError("the registry at {Endpoints} (prefix {Prefix}) names datacenter {Named}, not {Datacenter}: "
                            + "not used until it does", remote.Options.Endpoints, remote.Options.Prefix,
                            snapshot.Datacenter ?? "(none)", remote.Name);
                    continue;
                }
                if (_misnamed.Remove(remote.Name)) _log.LogInformation("datacenter {Datacenter}'s registry is used again", remote.Name);
                list.Add(new DatacenterSnapshot(remote.Name, snapshot, watcher.InTouch));
            }
            Volatile.Write(ref _current, list);
            subscribers = _subscribers;
        }
        foreach (var s in subscribers) s();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _subscriptions) s.Dispose();
        foreach (var (_, etcd, watcher) in _remotes)
        {
            await watcher.DisposeAsync();
            etcd.Dispose();
        }
    }

    private sealed class Subscription(RemoteDatacenters owner, Action onChange) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lock) owner._subscribers = [.. owner._subscribers.Where(s => s != onChange)];
        }
    }
}
