using System.Collections.Immutable;
using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Snapshot;

/// <summary>
/// The registry at one etcd revision, immutable, indexed for the followers' questions. The watcher
/// swaps a new one in atomically; readers hold whichever they got for as long as they like.
/// Workloads and every group (live workloads of a service, tag, label, node, address) are
/// <see cref="PersistentSortedSet{T, TKeyOf}"/>s sorted by workload id: indexable, O(log n) to update.
/// </summary>
public sealed class RegistrySnapshot
{
    public static readonly RegistrySnapshot Empty = new(
        0,
        ImmutableDictionary<string, Pod>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, Node>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, NodeStatus>.Empty.WithComparers(StringComparer.Ordinal),
        default,
        ImmutableDictionary<string, LbDomain>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, SshUser>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, DnsRecordSet>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<ServiceKey, ViewSet>.Empty,
        ImmutableDictionary<TagKey, ViewSet>.Empty,
        ImmutableDictionary<LabelKey, ViewSet>.Empty,
        ImmutableDictionary<string, ViewSet>.Empty.WithComparers(StringComparer.Ordinal),
        default,
        ImmutableDictionary<string, IdSet>.Empty.WithComparers(StringComparer.Ordinal),
        0,
        ImmutableDictionary<string, LbCertificate>.Empty.WithComparers(StringComparer.Ordinal));

    internal RegistrySnapshot(
        long revision,
        ImmutableDictionary<string, Pod> pods,
        ImmutableDictionary<string, Node> nodes,
        ImmutableDictionary<string, NodeStatus> nodeStatuses,
        ViewSet workloads,
        ImmutableDictionary<string, LbDomain> lbDomains,
        ImmutableDictionary<string, SshUser> sshUsers,
        ImmutableDictionary<string, DnsRecordSet> dnsRecords,
        ImmutableDictionary<string, string> problems,
        ImmutableDictionary<ServiceKey, ViewSet> liveByService,
        ImmutableDictionary<TagKey, ViewSet> liveByTag,
        ImmutableDictionary<LabelKey, ViewSet> liveByLabel,
        ImmutableDictionary<string, ViewSet> liveByNode,
        AddressSet liveByIp,
        ImmutableDictionary<string, IdSet> idsByNode,
        int liveCount,
        ImmutableDictionary<string, LbCertificate> lbCertificates)
    {
        LbCertificates = lbCertificates;
        Revision = revision;
        Pods = pods;
        Nodes = nodes;
        NodeStatuses = nodeStatuses;
        Workloads = workloads;
        LbDomains = lbDomains;
        SshUsers = sshUsers;
        DnsRecords = dnsRecords;
        Problems = problems;
        LiveByService = liveByService;
        LiveByTag = liveByTag;
        LiveByLabel = liveByLabel;
        LiveByNode = liveByNode;
        LiveByIp = liveByIp;
        IdsByNode = idsByNode;
        LiveCount = liveCount;
    }

    /// <summary>
    /// Whether a follower serving <paramref name="served"/> should take this one: any other snapshot not older. A newer
    /// one may share the revision: held deletions take effect later, at the revision they were seen at (registry.md).
    /// </summary>
    public bool Supersedes(RegistrySnapshot served) => !ReferenceEquals(this, served) && Revision >= served.Revision;

    private static long _generations;

    /// <summary>A number no other snapshot of this process has: how a follower tells what a snapshot was made from.</summary>
    public long Generation { get; } = Interlocked.Increment(ref _generations);

    /// <summary>The <see cref="Generation"/> of the snapshot this one was applied to; 0 for a full build.</summary>
    public long Parent { get; init; }

    /// <summary>
    /// The services whose group of live workloads differs from the parent's (null for a full build): a follower that
    /// keeps answers per service rebuilds these alone instead of comparing every service.
    /// </summary>
    public IReadOnlySet<ServiceKey>? ChangedServices { get; init; }

    /// <summary>
    /// The services changed since <paramref name="earlier"/> when this snapshot was applied to it directly (none when it
    /// is the same snapshot); null when that is not known.
    /// </summary>
    public IReadOnlySet<ServiceKey>? ChangedServicesSince(RegistrySnapshot earlier) =>
        ReferenceEquals(this, earlier) ? NoServices : Parent == earlier.Generation ? ChangedServices : null;

    private static readonly IReadOnlySet<ServiceKey> NoServices = new HashSet<ServiceKey>();

    /// <summary>The datacenter this registry says it belongs to (<c>datacenter/{name}</c>), or null when it names none.</summary>
    public string? Datacenter { get; init; }

    /// <summary>The etcd revision this snapshot reflects (every change up to it, none after).</summary>
    public long Revision { get; }

    public ImmutableDictionary<string, Pod> Pods { get; }
    public ImmutableDictionary<string, Node> Nodes { get; }

    /// <summary>Heartbeats: a node is alive while its status exists.</summary>
    public ImmutableDictionary<string, NodeStatus> NodeStatuses { get; }

    /// <summary>Every workload with a record or a status, live or not, by id.</summary>
    public ViewSet Workloads { get; }

    public ImmutableDictionary<string, LbDomain> LbDomains { get; }

    /// <summary>TLS certificates for the LB, by name.</summary>
    public ImmutableDictionary<string, LbCertificate> LbCertificates { get; }
    public ImmutableDictionary<string, SshUser> SshUsers { get; }

    /// <summary>Static DNS records by owner name.</summary>
    public ImmutableDictionary<string, DnsRecordSet> DnsRecords { get; }

    /// <summary>Keys whose stored value could not be used, and why. The last good value (if any) stays in force.</summary>
    public ImmutableDictionary<string, string> Problems { get; }

    public ImmutableDictionary<ServiceKey, ViewSet> LiveByService { get; }
    public ImmutableDictionary<TagKey, ViewSet> LiveByTag { get; }
    public ImmutableDictionary<LabelKey, ViewSet> LiveByLabel { get; }
    public ImmutableDictionary<string, ViewSet> LiveByNode { get; }
    /// <summary>
    /// Live workloads by address, both families; more than one only while an address is being reused. IPv6 keys are
    /// written in full (<see cref="IpAddresses.Key"/>), so ip6.arpa names and their prefixes map onto keys.
    /// </summary>
    public AddressSet LiveByIp { get; }

    /// <summary>Ids of every workload record on each node (live or not): what a node's usage is derived from.</summary>
    public ImmutableDictionary<string, IdSet> IdsByNode { get; }

    public int LiveCount { get; }

    public bool IsNodeAlive(string node) => NodeStatuses.ContainsKey(node);

    public ViewSet Live(string app, string entrypoint) =>
        LiveByService.GetValueOrDefault(new ServiceKey(app, entrypoint));

    public ViewSet LiveWithTag(string app, string entrypoint, string tag) =>
        LiveByTag.GetValueOrDefault(new TagKey(app, entrypoint, tag));

    public ViewSet LiveWithLabel(string key, string value) =>
        LiveByLabel.GetValueOrDefault(new LabelKey(key, value));

    public ViewSet LiveOnNode(string node) => LiveByNode.GetValueOrDefault(node);

    /// <summary>The live workload at an address of either family, in any spelling (the lowest id if two briefly share it).</summary>
    public WorkloadView? LiveAt(string ip) => LiveByIp.TryGetValue(IpAddresses.Key(ip), out var a) ? a.Views[0] : null;

    public bool IsLive(string id) => Workloads.TryGetValue(id, out var w) && w.IsLive;

    /// <summary>Why a workload is not live (which liveness condition fails); null when it is.</summary>
    public string? WhyNotLive(WorkloadView w) =>
        Liveness.WhyNot(w.Record, w.Status, w.StatusLease, w.Record is not null && IsNodeAlive(w.Record.Node));

    /// <summary>Workload records on a node, live or not.</summary>
    public IEnumerable<Workload> WorkloadsOn(string node)
    {
        foreach (var id in IdsByNode.GetValueOrDefault(node))
            if (Workloads.TryGetValue(id, out var w) && w.Record is not null) yield return w.Record;
    }

    /// <summary>Applies changes to this snapshot, returning the next one; this one is unchanged.</summary>
    public RegistrySnapshot Apply(IEnumerable<RegistryChange> changes, long revision)
    {
        var b = new SnapshotBuilder(this);
        foreach (var c in changes) b.Apply(c);
        return b.Build(revision);
    }

    /// <summary>Builds a snapshot from every key of the registry at once (the initial list).</summary>
    public static RegistrySnapshot Build(IEnumerable<RegistryChange> state, long revision) =>
        SnapshotBuilder.BuildFull(state, revision);
}
