using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Registry.Watch;

/// <summary>
/// Deletions of lease-held keys (heartbeats and workload statuses) kept out of the snapshot for a grace period.
/// When etcd stalls past the lease TTL, every lease expires at once on its return and the agents write everything
/// again a moment later; held, that moment is never served as "nothing is live". A key written again within the
/// grace was never gone; one that is not goes when the grace is over. Keys of other kinds, and records (which Core
/// deletes on purpose), take effect at once. Not thread-safe: the watcher calls it under its lock.
/// </summary>
internal sealed class HeldDeletions(TimeSpan grace, Func<long>? clockMs = null)
{
    private readonly Func<long> _now = clockMs ?? (() => Environment.TickCount64);
    private readonly Dictionary<(RegistryKind Kind, string Name), long> _due = [];
    private long _rewritten, _applied;

    public TimeSpan Grace => grace;

    public int Count => _due.Count;

    /// <summary>Held keys written again within the grace: flaps nobody saw.</summary>
    public long Rewritten => Interlocked.Read(ref _rewritten);

    /// <summary>Held keys whose grace ran out: gone for good.</summary>
    public long Applied => Interlocked.Read(ref _applied);

    /// <summary>When the next hold is over (milliseconds of the clock), or null when nothing is held.</summary>
    public long? NextDue => _due.Count == 0 ? null : _due.Values.Min();

    public static bool IsLeaseHeld(RegistryKind kind) =>
        ReferenceEquals(kind, Kinds.NodeStatus) || ReferenceEquals(kind, Kinds.WorkloadStatus);

    /// <summary>
    /// Takes out of <paramref name="changes"/> the deletions to hold (keys <paramref name="current"/> serves), and
    /// ends the hold of any key written again. Returns how many deletions it began to hold.
    /// </summary>
    public int Filter(RegistrySnapshot current, List<RegistryChange> changes)
    {
        if (grace <= TimeSpan.Zero) return 0;
        var due = _now() + (long)grace.TotalMilliseconds;
        var held = 0;
        var kept = 0;
        for (var i = 0; i < changes.Count; i++)
        {
            var c = changes[i];
            if (IsLeaseHeld(c.Kind))
            {
                if (c.IsDelete && Serves(current, c.Kind, c.Name))
                {
                    if (_due.TryAdd((c.Kind, c.Name), due)) held++; // a second deletion does not extend the first one's hold
                    continue;
                }
                if (!c.IsDelete && _due.Remove((c.Kind, c.Name))) Interlocked.Increment(ref _rewritten);
            }
            changes[kept++] = c;
        }
        changes.RemoveRange(kept, changes.Count - kept);
        return held;
    }

    /// <summary>
    /// For a full list after the snapshot <paramref name="previous"/>: its heartbeats and statuses missing from
    /// <paramref name="state"/> are added back (and held), as a deletion seen by the watch would be.
    /// Returns how many were added.
    /// </summary>
    public int HoldMissing(RegistrySnapshot previous, List<RegistryChange> state)
    {
        if (grace <= TimeSpan.Zero || previous.Revision == 0) return 0;
        var listed = new HashSet<(RegistryKind, string)>();
        foreach (var c in state)
            if (IsLeaseHeld(c.Kind) && listed.Add((c.Kind, c.Name)) && _due.Remove((c.Kind, c.Name)))
                Interlocked.Increment(ref _rewritten);
        var due = _now() + (long)grace.TotalMilliseconds;
        var added = 0;
        foreach (var (node, status) in previous.NodeStatuses)
            if (!listed.Contains((Kinds.NodeStatus, node)))
            {
                state.Add(RegistryChange.Put(Kinds.NodeStatus, status));
                _due.TryAdd((Kinds.NodeStatus, node), due);
                added++;
            }
        foreach (var w in previous.Workloads)
            if (w.Status is { } status && !listed.Contains((Kinds.WorkloadStatus, w.Id)))
            {
                state.Add(RegistryChange.Put(Kinds.WorkloadStatus, status, w.StatusLease));
                _due.TryAdd((Kinds.WorkloadStatus, w.Id), due);
                added++;
            }
        return added;
    }

    /// <summary>The deletions whose grace is over, no longer held.</summary>
    public List<RegistryChange> TakeDue()
    {
        var now = _now();
        var list = new List<RegistryChange>();
        foreach (var ((kind, name), due) in _due)
            if (due <= now) list.Add(RegistryChange.Delete(kind, name));
        foreach (var c in list) _due.Remove((c.Kind, c.Name));
        Interlocked.Add(ref _applied, list.Count);
        return list;
    }

    private static bool Serves(RegistrySnapshot s, RegistryKind kind, string name) =>
        ReferenceEquals(kind, Kinds.NodeStatus)
            ? s.NodeStatuses.ContainsKey(name)
            : s.Workloads.TryGetValue(name, out var w) && w.Status is not null;
}
