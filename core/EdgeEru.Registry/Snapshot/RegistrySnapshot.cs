using System.Collections.Immutable;
using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Snapshot;

/// <summary>
/// The registry at one etcd revision, immutable, indexed for the followers' questions. The watcher
/// swaps a new one in atomically; readers hold whichever they got for as long as they like.
/// Groups (live workloads of a service, tag, label, node) are arrays sorted by workload id.
/// </summary>
public sealed class RegistrySnapshot
{
    public static readonly RegistrySnapshot Empty = new(
        0,
        ImmutableDictionary<string, Pod>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, Node>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, NodeStatus>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, WorkloadView>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, ReservedRecord>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, ReservedRecord>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<ServiceKey, ImmutableArray<WorkloadView>>.Empty,
        ImmutableDictionary<TagKey, ImmutableArray<WorkloadView>>.Empty,
        ImmutableDictionary<LabelKey, ImmutableArray<WorkloadView>>.Empty,
        ImmutableDictionary<string, ImmutableArray<WorkloadView>>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, ImmutableArray<WorkloadView>>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, ImmutableArray<string>>.Empty.WithComparers(StringComparer.Ordinal),
        0);

    internal RegistrySnapshot(
        long revision,
        ImmutableDictionary<string, Pod> pods,
        ImmutableDictionary<string, Node> nodes,
        ImmutableDictionary<string, NodeStatus> nodeStatuses,
        ImmutableDictionary<string, WorkloadView> workloads,
        ImmutableDictionary<string, ReservedRecord> lbDomains,
        ImmutableDictionary<string, ReservedRecord> sshUsers,
        ImmutableDictionary<string, string> problems,
        ImmutableDictionary<ServiceKey, ImmutableArray<WorkloadView>> liveByService,
        ImmutableDictionary<TagKey, ImmutableArray<WorkloadView>> liveByTag,
        ImmutableDictionary<LabelKey, ImmutableArray<WorkloadView>> liveByLabel,
        ImmutableDictionary<string, ImmutableArray<WorkloadView>> liveByNode,
        ImmutableDictionary<string, ImmutableArray<WorkloadView>> liveByIp,
        ImmutableDictionary<string, ImmutableArray<string>> idsByNode,
        int liveCount)
    {
        Revision = revision;
        Pods = pods;
        Nodes = nodes;
        NodeStatuses = nodeStatuses;
        Workloads = workloads;
        LbDomains = lbDomains;
        SshUsers = sshUsers;
        Problems = problems;
        LiveByService = liveByService;
        LiveByTag = liveByTag;
        LiveByLabel = liveByLabel;
        LiveByNode = liveByNode;
        LiveByIp = liveByIp;
        IdsByNode = idsByNode;
        LiveCount = liveCount;
    }

    /// <summary>The etcd revision this snapshot reflects (every change up to it, none after).</summary>
    public long Revision { get; }

    public ImmutableDictionary<string, Pod> Pods { get; }
    public ImmutableDictionary<string, Node> Nodes { get; }

    /// <summary>Heartbeats: a node is alive while its status exists.</summary>
    public ImmutableDictionary<string, NodeStatus> NodeStatuses { get; }

    /// <summary>Every workload with a record or a status, live or not, by id.</summary>
    public ImmutableDictionary<string, WorkloadView> Workloads { get; }

    public ImmutableDictionary<string, ReservedRecord> LbDomains { get; }
    public ImmutableDictionary<string, ReservedRecord> SshUsers { get; }

    /// <summary>Keys whose stored value could not be used, and why. The last good value (if any) stays in force.</summary>
    public ImmutableDictionary<string, string> Problems { get; }

    public ImmutableDictionary<ServiceKey, ImmutableArray<WorkloadView>> LiveByService { get; }
    public ImmutableDictionary<TagKey, ImmutableArray<WorkloadView>> LiveByTag { get; }
    public ImmutableDictionary<LabelKey, ImmutableArray<WorkloadView>> LiveByLabel { get; }
    public ImmutableDictionary<string, ImmutableArray<WorkloadView>> LiveByNode { get; }
    /// <summary>Live workloads by address; more than one only while an address is being reused.</summary>
    public ImmutableDictionary<string, ImmutableArray<WorkloadView>> LiveByIp { get; }

    /// <summary>Ids of every workload record on each node (live or not): what a node's usage is derived from.</summary>
    public ImmutableDictionary<string, ImmutableArray<string>> IdsByNode { get; }

    public int LiveCount { get; }

    public bool IsNodeAlive(string node) => NodeStatuses.ContainsKey(node);

    public ImmutableArray<WorkloadView> Live(string app, string entrypoint) =>
        LiveByService.GetValueOrDefault(new ServiceKey(app, entrypoint), []);

    public ImmutableArray<WorkloadView> LiveWithTag(string app, string entrypoint, string tag) =>
        LiveByTag.GetValueOrDefault(new TagKey(app, entrypoint, tag), []);

    public ImmutableArray<WorkloadView> LiveWithLabel(string key, string value) =>
        LiveByLabel.GetValueOrDefault(new LabelKey(key, value), []);

    public ImmutableArray<WorkloadView> LiveOnNode(string node) => LiveByNode.GetValueOrDefault(node, []);

    /// <summary>The live workload at an address (the lowest id if two briefly share it).</summary>
    public WorkloadView? LiveAt(string ip) => LiveByIp.TryGetValue(ip, out var a) ? a[0] : null;

    public bool IsLive(string id) => Workloads.TryGetValue(id, out var w) && w.IsLive;

    /// <summary>Workload records on a node, live or not.</summary>
    public IEnumerable<Workload> WorkloadsOn(string node)
    {
        foreach (var id in IdsByNode.GetValueOrDefault(node, []))
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
