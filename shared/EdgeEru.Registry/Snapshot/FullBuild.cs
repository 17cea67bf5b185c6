using System.Collections.Immutable;
using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Snapshot;

/// <summary>
/// The initial build: the whole registry at one revision, grouped in plain collections and frozen once. It takes the
/// list page by page as it arrives, so that indexing runs while the next pages are fetched, not after the last one:
/// etcd lists keys in order, and node statuses and workload statuses sort before workload records, so every record
/// can be joined with its status and its node's heartbeat the moment it arrives. Records and statuses are merge-joined
/// by id; views come out in id order and every group is collected already sorted. Input in any other order (tests, a
/// list with held values added) is built the same, at <see cref="Finish"/>.
/// </summary>
internal sealed class FullBuild
{
    private readonly ImmutableDictionary<string, Pod>.Builder _pods = RegistrySnapshot.Empty.Pods.ToBuilder();
    private readonly ImmutableDictionary<string, Node>.Builder _nodes = RegistrySnapshot.Empty.Nodes.ToBuilder();
    private readonly ImmutableDictionary<string, NodeStatus>.Builder _nodeStatuses = RegistrySnapshot.Empty.NodeStatuses.ToBuilder();
    private readonly ImmutableDictionary<string, LbDomain>.Builder _lb = RegistrySnapshot.Empty.LbDomains.ToBuilder();
    private readonly ImmutableDictionary<string, SshUser>.Builder _ssh = RegistrySnapshot.Empty.SshUsers.ToBuilder();
    private readonly ImmutableDictionary<string, DnsRecordSet>.Builder _dnsRecords = RegistrySnapshot.Empty.DnsRecords.ToBuilder();
    private readonly ImmutableDictionary<string, LbCertificate>.Builder _lbCertificates =
        RegistrySnapshot.Empty.LbCertificates.ToBuilder();
    private readonly ImmutableDictionary<string, string>.Builder _problems = RegistrySnapshot.Empty.Problems.ToBuilder();
    private string? _datacenter;
    private readonly List<Workload> _records = [];
    private readonly List<(WorkloadStatus Status, long Lease)> _statuses = [];

    // The join, as far as it has gone: records before _joinedRecords and statuses before _joinedStatuses are in the groups.
    private Joined? _joined;
    private int _joinedRecords;
    private int _joinedStatuses;
    private bool _inOrder = true;

    /// <summary>Statuses and heartbeats sort before records (etcd's key order): what lets a record join as it arrives.</summary>
    private static readonly bool StatusesFirst =
        string.CompareOrdinal(Kinds.NodeStatus.Segment, Kinds.Workloads.Segment) < 0
        && string.CompareOrdinal(Kinds.WorkloadStatus.Segment, Kinds.Workloads.Segment) < 0;

    public void Add(IEnumerable<RegistryChange> page)
    {
        foreach (var c in page)
        {
            if (c.Problem is not null)
            {
                _problems[c.Kind.Segment + "/" + c.Name] = c.Problem;
                continue;
            }
            switch (c.Value)
            {
                case Pod p: _pods[c.Name] = p; break;
                case Node n: _nodes[c.Name] = n; break;
                case NodeStatus s:
                    _nodeStatuses[c.Name] = s;
                    if (_records.Count > 0) _inOrder = false; // a heartbeat after a record: liveness judged so far may be wrong
                    break;
                case Workload w:
                    if (_records.Count > 0 && string.CompareOrdinal(_records[^1].Id, w.Id) >= 0) _inOrder = false;
                    _records.Add(w);
                    break;
                case WorkloadStatus s:
                    if (_records.Count > 0 || (_statuses.Count > 0 && string.CompareOrdinal(_statuses[^1].Status.Id, s.Id) >= 0))
                        _inOrder = false;
                    _statuses.Add((s, c.Lease));
                    break;
                case LbDomain d: _lb[c.Name] = d; break;
                case SshUser r when ReferenceEquals(c.Kind, Kinds.SshUsers): _ssh[c.Name] = r; break;
                case DnsRecordSet d: _dnsRecords[c.Name] = d; break;
                case LbCertificate t: _lbCertificates[c.Name] = t; break;
                case Datacenter d: _datacenter = d.Name; break;
                default: break;
            }
        }
        if (StatusesFirst && _inOrder && _records.Count > _joinedRecords) JoinArrived();
    }

    /// <summary>Joins the records that arrived since the last page, with every status whose id is not past theirs.</summary>
    private void JoinArrived()
    {
        _joined ??= new Joined(_nodeStatuses.ToImmutable());
        while (_joinedRecords < _records.Count)
        {
            var rec = _records[_joinedRecords];
            // Statuses without a record (ids below this record's) make views of their own, as at the end.
            while (_joinedStatuses < _statuses.Count && string.CompareOrdinal(_statuses[_joinedStatuses].Status.Id, rec.Id) < 0)
                _joined.Add(null, _statuses[_joinedStatuses++]);
            var matches = _joinedStatuses < _statuses.Count && _statuses[_joinedStatuses].Status.Id == rec.Id;
            _joined.Add(rec, matches ? _statuses[_joinedStatuses++] : default);
            _joinedRecords++;
        }
    }

    public RegistrySnapshot Finish(long revision)
    {
        Joined joined;
        if (StatusesFirst && _inOrder && _joined is not null)
        {
            joined = _joined;
        }
        else
        {
            // Not in etcd's order (or nothing joined yet): sort and join everything now.
            SnapshotBuilder.SortIfNeeded(_records, static w => w.Id);
            SnapshotBuilder.SortIfNeeded(_statuses, static s => s.Status.Id);
            joined = new Joined(_nodeStatuses.ToImmutable());
            (_joinedRecords, _joinedStatuses) = (0, 0);
        }
        while (_joinedRecords < _records.Count || _joinedStatuses < _statuses.Count)
        {
            var order = _joinedRecords == _records.Count ? 1
                : _joinedStatuses == _statuses.Count ? -1
                : string.CompareOrdinal(_records[_joinedRecords].Id, _statuses[_joinedStatuses].Status.Id);
            var rec = order <= 0 ? _records[_joinedRecords++] : null;
            var status = order >= 0 ? _statuses[_joinedStatuses++] : default;
            joined.Add(rec, status);
        }
        return joined.Freeze(revision, _pods.ToImmutable(), _nodes.ToImmutable(), _lb.ToImmutable(), _ssh.ToImmutable(),
            _dnsRecords.ToImmutable(), _problems.ToImmutable(), _lbCertificates.ToImmutable(), _datacenter);
    }

    /// <summary>Views and groups of the records and statuses joined so far, in id order.</summary>
    private sealed class Joined(ImmutableDictionary<string, NodeStatus> nodeStatuses)
    {
        private readonly List<WorkloadView> _views = [];
        private readonly Dictionary<string, List<string>> _ids = new(StringComparer.Ordinal);
        private readonly Dictionary<ServiceKey, List<WorkloadView>> _byService = [];
        private readonly Dictionary<TagKey, List<WorkloadView>> _byTag = [];
        private readonly Dictionary<LabelKey, List<WorkloadView>> _byLabel = [];
        private readonly Dictionary<string, List<WorkloadView>> _byNode = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<WorkloadView>> _byIp = new(StringComparer.Ordinal);
        private int _live;

        public void Add(Workload? rec, (WorkloadStatus Status, long Lease) status)
        {
            var (st, lease) = status;
            var v = SnapshotBuilder.NewView(rec?.Id ?? st!.Id, rec, st, lease, nodeStatuses);
            if (_views.Count > 0 && _views[^1].Id == v.Id)
                throw new ArgumentException($"workload {v.Id} appears twice in the state");
            _views.Add(v);
            if (rec is null) return;
            Groups.Collect(_ids, rec.Node, v.Id);
            if (!v.IsLive) return;
            _live++;
            Groups.Collect(_byService, new ServiceKey(rec.App, rec.Entrypoint), v);
            WorkloadView.ForEachDistinctTag(rec, (_byTag, v), static (s, tag) =>
                Groups.Collect(s._byTag, new TagKey(s.v.Record!.App, s.v.Record.Entrypoint, tag), s.v));
            foreach (var (k, val) in rec.Labels) Groups.Collect(_byLabel, new LabelKey(k, val), v);
            Groups.Collect(_byNode, rec.Node, v);
            v.ForEachAddressKey((_byIp, v), static (s, ip) => Groups.Collect(s._byIp, ip, s.v));
        }

        public RegistrySnapshot Freeze(long revision, ImmutableDictionary<string, Pod> pods, ImmutableDictionary<string, Node> nodes,
            ImmutableDictionary<string, LbDomain> lb, ImmutableDictionary<string, SshUser> ssh,
            ImmutableDictionary<string, DnsRecordSet> dnsRecords, ImmutableDictionary<string, string> problems,
            ImmutableDictionary<string, LbCertificate> lbCertificates, string? datacenter)
        {
            var empty = RegistrySnapshot.Empty;
            var addresses = new List<AddressEntry>(_byIp.Count);
            foreach (var (ip, list) in _byIp) addresses.Add(new AddressEntry(ip, ViewSet.FromSorted(list)));
            SnapshotBuilder.SortIfNeeded(addresses, static a => a.Address);
            return new RegistrySnapshot(
                revision, pods, nodes, nodeStatuses, ViewSet.FromSorted(_views), lb, ssh, dnsRecords, problems,
                Groups.Freeze(empty.LiveByService, _byService), Groups.Freeze(empty.LiveByTag, _byTag),
                Groups.Freeze(empty.LiveByLabel, _byLabel), Groups.Freeze(empty.LiveByNode, _byNode),
                AddressSet.FromSorted(addresses),
                empty.IdsByNode.AddRange(_ids.Select(kv => new KeyValuePair<string, IdSet>(kv.Key, IdSet.FromSorted(kv.Value)))),
                _live, lbCertificates) { Datacenter = datacenter };
        }
    }
}
