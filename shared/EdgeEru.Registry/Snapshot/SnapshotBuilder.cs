using System.Collections.Immutable;
using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Snapshot;

/// <summary>
/// Turns changes into the next snapshot. The incremental path touches only what a change touches:
/// O(log n) in the maps, O(group size) in the one or few group arrays the workload belongs to.
/// The full build (initial list) groups in plain collections and freezes once.
/// </summary>
internal sealed class SnapshotBuilder
{
    private readonly ImmutableDictionary<string, Pod>.Builder _pods;
    private readonly ImmutableDictionary<string, Node>.Builder _nodes;
    private readonly ImmutableDictionary<string, NodeStatus>.Builder _nodeStatuses;
    private ViewSet _workloads;
    private readonly ImmutableDictionary<string, LbDomain>.Builder _lbDomains;
    private readonly ImmutableDictionary<string, SshUser>.Builder _sshUsers;
    private readonly ImmutableDictionary<string, DnsRecordSet>.Builder _dnsRecords;
    private readonly ImmutableDictionary<string, string>.Builder _problems;
    private readonly ImmutableDictionary<ServiceKey, ViewSet>.Builder _byService;
    private readonly ImmutableDictionary<TagKey, ViewSet>.Builder _byTag;
    private readonly ImmutableDictionary<LabelKey, ViewSet>.Builder _byLabel;
    private readonly ImmutableDictionary<string, ViewSet>.Builder _byNode;
    private AddressSet _byIp;
    private readonly ImmutableDictionary<string, IdSet>.Builder _idsByNode;
    private int _liveCount;
    private readonly ImmutableDictionary<string, LbCertificate>.Builder _lbCertificates;
    private string? _datacenter;
    private readonly long _parent;
    private readonly HashSet<ServiceKey> _changedServices = [];

    public SnapshotBuilder(RegistrySnapshot from)
    {
        _parent = from.Generation;
        _datacenter = from.Datacenter;
        _pods = from.Pods.ToBuilder();
        _nodes = from.Nodes.ToBuilder();
        _nodeStatuses = from.NodeStatuses.ToBuilder();
        _workloads = from.Workloads;
        _lbDomains = from.LbDomains.ToBuilder();
        _sshUsers = from.SshUsers.ToBuilder();
        _dnsRecords = from.DnsRecords.ToBuilder();
        _problems = from.Problems.ToBuilder();
        _byService = from.LiveByService.ToBuilder();
        _byTag = from.LiveByTag.ToBuilder();
        _byLabel = from.LiveByLabel.ToBuilder();
        _byNode = from.LiveByNode.ToBuilder();
        _byIp = from.LiveByIp;
        _idsByNode = from.IdsByNode.ToBuilder();
        _liveCount = from.LiveCount;
        _lbCertificates = from.LbCertificates.ToBuilder();
    }

    public RegistrySnapshot Build(long revision) => new(
        revision, _pods.ToImmutable(), _nodes.ToImmutable(), _nodeStatuses.ToImmutable(), _workloads,
        _lbDomains.ToImmutable(), _sshUsers.ToImmutable(), _dnsRecords.ToImmutable(), _problems.ToImmutable(), _byService.ToImmutable(),
        _byTag.ToImmutable(), _byLabel.ToImmutable(), _byNode.ToImmutable(), _byIp,
        _idsByNode.ToImmutable(), _liveCount, _lbCertificates.ToImmutable())
    {
        Datacenter = _datacenter, Parent = _parent, ChangedServices = _changedServices,
    };

    public void Apply(RegistryChange c)
    {
        var problemKey = c.Kind.Segment + "/" + c.Name;
        if (c.Problem is not null)
        {
            // Keep the last good value: a bad write must not take a working thing away.
            _problems[problemKey] = c.Problem;
            return;
        }
        _problems.Remove(problemKey);

        switch (c.Value)
        {
            case null when ReferenceEquals(c.Kind, Kinds.Pods): _pods.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.Nodes): _nodes.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.NodeStatus): SetNodeStatus(c.Name, null); break;
            case null when ReferenceEquals(c.Kind, Kinds.Workloads): SetWorkload(c.Name, null, true, null, 0, false); break;
            case null when ReferenceEquals(c.Kind, Kinds.WorkloadStatus): SetWorkload(c.Name, null, false, null, 0, true); break;
            case null when ReferenceEquals(c.Kind, Kinds.LbDomains): _lbDomains.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.SshUsers): _sshUsers.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.DnsRecords): _dnsRecords.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.LbCertificates): _lbCertificates.Remove(c.Name); break;
            case null when ReferenceEquals(c.Kind, Kinds.Datacenters):
                if (_datacenter == c.Name) _datacenter = null;
                break;
            case Datacenter d: _datacenter = d.Name; break;
            case Pod p: _pods[c.Name] = p; break;
            case Node n: _nodes[c.Name] = n; break;
            case NodeStatus s: SetNodeStatus(c.Name, s); break;
            case Workload w: SetWorkload(c.Name, w, true, null, 0, false); break;
            case WorkloadStatus s: SetWorkload(c.Name, null, false, s, c.Lease, true); break;
            case LbDomain d: _lbDomains[c.Name] = d; break;
            case SshUser r when ReferenceEquals(c.Kind, Kinds.SshUsers): _sshUsers[c.Name] = r; break;
            case DnsRecordSet d: _dnsRecords[c.Name] = d; break;
            case LbCertificate t: _lbCertificates[c.Name] = t; break;
            default: break;
        }
    }

    private void SetNodeStatus(string node, NodeStatus? status)
    {
        var wasAlive = _nodeStatuses.ContainsKey(node);
        if (status is null) _nodeStatuses.Remove(node);
        else _nodeStatuses[node] = status;
        if (wasAlive == status is not null) return;
        // The node's liveness flipped: every workload on it may change (cost: that node's workloads).
        foreach (var id in _idsByNode.GetValueOrDefault(node))
        {
            var old = _workloads[id];
            Replace(id, old, old.Record, old.Status, old.StatusLease);
        }
    }

    private void SetWorkload(string id, Workload? record, bool setRecord, WorkloadStatus? status, long lease, bool setStatus)
    {
        var old = _workloads.GetValueOrDefault(id);
        var rec = setRecord ? record : old?.Record;
        var st = setStatus ? status : old?.Status;
        var stLease = setStatus ? lease : old?.StatusLease ?? 0;
        Replace(id, old, rec, st, stLease);
    }

    private void Replace(string id, WorkloadView? old, Workload? rec, WorkloadStatus? st, long lease)
    {
        var next = rec is null && st is null ? null : NewView(id, rec, st, lease, _nodeStatuses);
        if (old is { IsLive: true }) RemoveLive(old);
        var oldNode = old?.Record?.Node;
        var newNode = next?.Record?.Node;
        if (oldNode != newNode)
        {
            if (oldNode is not null) Groups.Remove(_idsByNode, oldNode, id);
            if (newNode is not null) Groups.Add(_idsByNode, newNode, id);
        }
        _workloads = next is null ? _workloads.Remove(id) : _workloads.SetItem(next);
        if (next is { IsLive: true }) AddLive(next);
    }

    internal static WorkloadView NewView(
        string id, Workload? rec, WorkloadStatus? st, long lease, IReadOnlyDictionary<string, NodeStatus> nodeStatuses)
    {
        if (rec is not null && st is not null) st = ShareWithRecord(rec, st);
        return new(rec?.Id ?? st?.Id ?? id, rec, st, lease,
            Liveness.IsLive(rec, st, lease, rec is not null && nodeStatuses.ContainsKey(rec.Node)));
    }

    /// <summary>
    /// A status repeats its record's id and, usually, its addresses: share the record's copies so a
    /// workload holds its 64-character id and its address map once.
    /// </summary>
    private static WorkloadStatus ShareWithRecord(Workload rec, WorkloadStatus st)
    {
        var shareId = !ReferenceEquals(st.Id, rec.Id);
        var shareAddresses = !ReferenceEquals(st.Addresses, rec.Networks) && st.Addresses.Equals(rec.Networks);
        if (!shareId && !shareAddresses) return st;
        return st with { Id = rec.Id, Addresses = shareAddresses ? rec.Networks : st.Addresses };
    }

    private void AddLive(WorkloadView v)
    {
        var r = v.Record!;
        var service = new ServiceKey(r.App, r.Entrypoint);
        Groups.Add(_byService, service, v);
        _changedServices.Add(service);
        WorkloadView.ForEachDistinctTag(r, (this, v), static (s, tag) =>
            Groups.Add(s.Item1._byTag, new TagKey(s.v.Record!.App, s.v.Record.Entrypoint, tag), s.v));
        foreach (var (k, val) in r.Labels) Groups.Add(_byLabel, new LabelKey(k, val), v);
        Groups.Add(_byNode, r.Node, v);
        v.ForEachAddressKey((b: this, v), static (s, ip) =>
        {
            var views = s.b._byIp.TryGetValue(ip, out var at) ? at.Views : default;
            s.b._byIp = s.b._byIp.SetItem(new AddressEntry(ip, views.SetItem(s.v)));
        });
        _liveCount++;
    }

    private void RemoveLive(WorkloadView v)
    {
        var r = v.Record!;
        var service = new ServiceKey(r.App, r.Entrypoint);
        Groups.Remove(_byService, service, v.Id);
        _changedServices.Add(service);
        WorkloadView.ForEachDistinctTag(r, (this, v), static (s, tag) =>
            Groups.Remove(s.Item1._byTag, new TagKey(s.v.Record!.App, s.v.Record.Entrypoint, tag), s.v.Id));
        foreach (var (k, val) in r.Labels) Groups.Remove(_byLabel, new LabelKey(k, val), v.Id);
        Groups.Remove(_byNode, r.Node, v.Id);
        v.ForEachAddressKey((b: this, id: v.Id), static (s, ip) =>
        {
            if (!s.b._byIp.TryGetValue(ip, out var at)) return;
            var views = at.Views.Remove(s.id);
            s.b._byIp = views.IsEmpty ? s.b._byIp.Remove(ip) : s.b._byIp.SetItem(new AddressEntry(ip, views));
        });
        _liveCount--;
    }

    /// <summary>The initial build of a whole registry at one revision (see <see cref="FullBuild"/>).</summary>
    public static RegistrySnapshot BuildFull(IEnumerable<RegistryChange> state, long revision)
    {
        var build = new FullBuild();
        build.Add(state);
        return build.Finish(revision);
    }

    /// <summary>Sorts by key (ordinal) unless already sorted: an O(n) check saves the sort in the usual case.</summary>
    internal static void SortIfNeeded<T>(List<T> items, Func<T, string> key)
    {
        for (var i = 1; i < items.Count; i++)
        {
            if (string.CompareOrdinal(key(items[i - 1]), key(items[i])) > 0)
            {
                items.Sort((a, b) => string.CompareOrdinal(key(a), key(b)));
                return;
            }
        }
    }
}

/// <summary>Group maintenance: each group is a persistent sorted set; an emptied group is removed.</summary>
internal static class Groups
{
    public static void Add<TKey, T, TKeyOf>(ImmutableDictionary<TKey, PersistentSortedSet<T, TKeyOf>>.Builder d, TKey key, T item)
        where TKey : notnull where T : class where TKeyOf : IKeyOf<T> =>
        d[key] = d.GetValueOrDefault(key).SetItem(item);

    public static void Remove<TKey, T, TKeyOf>(ImmutableDictionary<TKey, PersistentSortedSet<T, TKeyOf>>.Builder d, TKey key, string id)
        where TKey : notnull where T : class where TKeyOf : IKeyOf<T>
    {
        if (!d.TryGetValue(key, out var set)) return;
        var next = set.Remove(id);
        if (next.IsEmpty) d.Remove(key);
        else d[key] = next;
    }

    public static void Collect<TKey, TValue>(Dictionary<TKey, List<TValue>> d, TKey key, TValue v) where TKey : notnull
    {
        if (!d.TryGetValue(key, out var list)) d[key] = list = [];
        list.Add(v);
    }

    /// <summary>Freezes groups collected in id order.</summary>
    public static ImmutableDictionary<TKey, ViewSet> Freeze<TKey>(
        ImmutableDictionary<TKey, ViewSet> empty, Dictionary<TKey, List<WorkloadView>> groups)
        where TKey : notnull =>
        empty.AddRange(groups.Select(kv => new KeyValuePair<TKey, ViewSet>(kv.Key, ViewSet.FromSorted(kv.Value))));
}
