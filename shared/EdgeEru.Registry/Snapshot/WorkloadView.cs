using EdgeEru.Registry.Model;

namespace EdgeEru.Registry.Snapshot;

/// <summary>
/// One workload as a snapshot sees it: Core's record and the agent's status, joined by id, and
/// whether it is live at the snapshot's revision. Immutable; a change makes a new view.
/// </summary>
public sealed class WorkloadView
{
    internal WorkloadView(string id, Workload? record, WorkloadStatus? status, long statusLease, bool isLive)
    {
        Id = id;
        Record = record;
        Status = status;
        StatusLease = statusLease;
        IsLive = isLive;
    }

    public string Id { get; }

    /// <summary>What Core created; null while only a status exists (a record deleted before its status).</summary>
    public Workload? Record { get; }

    public WorkloadStatus? Status { get; }

    /// <summary>The etcd lease the status key is attached to (0: none, which the liveness rule refuses).</summary>
    public long StatusLease { get; }

    /// <summary>
    /// Live: the record exists and is not a job, the status says running and healthy, the status is under
    /// a lease (so it vanishes when its agent does), and the node's heartbeat exists.
    /// </summary>
    public bool IsLive { get; }

    /// <summary>The address on a Docker network: observed by the agent, else the one Core requested.</summary>
    public string? Address(string network)
    {
        if (Status is not null && Status.Addresses.TryGetValue(network, out var observed)) return observed;
        if (Record is not null && Record.Networks.TryGetValue(network, out var requested) && requested.Length > 0) return requested;
        return null;
    }

    /// <summary>The IPv6 address on a Docker network: observed by the agent, else the fixed one Core requested.</summary>
    public string? Address6(string network)
    {
        if (Status?.Addresses6 is { } observed && observed.TryGetValue(network, out var ip)) return ip;
        if (Record?.Networks6 is { } requested && requested.TryGetValue(network, out ip)) return ip;
        return null;
    }

    /// <summary>The first IPv6 address of <see cref="ForEachAddress6"/>, without a list: what a zone with no network serves.</summary>
    public string? FirstAddress6()
    {
        if (Status?.Addresses6 is { Count: > 0 } observed) return observed.First().Value;
        return Record?.Networks6 is { Count: > 0 } requested ? requested.First().Value : null;
    }

    /// <summary>Every (network, IPv6 address) pair, observed ones first.</summary>
    public List<(string Network, string Address)> Addresses6()
    {
        var list = new List<(string, string)>(0);
        ForEachAddress6(list, static (l, net, ip) => l.Add((net, ip)));
        return list;
    }

    /// <summary>Calls <paramref name="action"/> for each (network, IPv6 address) pair without allocating.</summary>
    public void ForEachAddress6<TState>(TState state, Action<TState, string, string> action)
    {
        var observed = Status?.Addresses6;
        if (observed is not null)
            foreach (var (net, ip) in observed) action(state, net, ip);
        if (Record?.Networks6 is { } requested)
            foreach (var (net, ip) in requested)
                if (observed is null || !observed.ContainsKey(net))
                    action(state, net, ip);
    }

    /// <summary>Every address of both families as the address index keys it (<see cref="IpAddresses.Key"/>).</summary>
    internal void ForEachAddressKey<TState>(TState state, Action<TState, string> action)
    {
        ForEachAddress((state, action), static (s, _, ip) => s.action(s.state, IpAddresses.Key(ip))); // older writers put IPv6 here too
        ForEachAddress6((state, action), static (s, _, ip) => s.action(s.state, IpAddresses.Key(ip)));
    }

    /// <summary>Every (network, address) pair, observed ones first (the <c>addresses</c> maps: IPv4).</summary>
    public List<(string Network, string Address)> Addresses()
    {
        var list = new List<(string, string)>(1);
        ForEachAddress(list, static (l, net, ip) => l.Add((net, ip)));
        return list;
    }

    /// <summary>Calls <paramref name="action"/> for each (network, address) pair without allocating.</summary>
    public void ForEachAddress<TState>(TState state, Action<TState, string, string> action)
    {
        if (Status is not null)
            foreach (var (net, ip) in Status.Addresses) action(state, net, ip);
        if (Record is not null)
            foreach (var (net, ip) in Record.Networks)
                if (ip.Length > 0 && (Status is null || !Status.Addresses.ContainsKey(net)))
                    action(state, net, ip);
    }

    /// <summary>The record's tags without repeats (a record may list a tag twice).</summary>
    internal static void ForEachDistinctTag<TState>(Workload record, TState state, Action<TState, string> action)
    {
        var tags = record.Tags;
        for (var i = 0; i < tags.Length; i++)
            if (Array.IndexOf(tags, tags[i], 0, i) < 0) action(state, tags[i]);
    }

    /// <summary>Orders views by workload id in a <see cref="PersistentSortedSet{T, TKeyOf}"/>.</summary>
    public readonly struct KeyById : IKeyOf<WorkloadView>
    {
        public static string Key(WorkloadView item) => item.Id;
    }

    public override string ToString() => $"{Id} {(Record is null ? "-" : $"{Record.App}.{Record.Entrypoint}@{Record.Node}")} live={IsLive}";
}

/// <summary>The liveness rule of docs/registry.md, as a pure function.</summary>
public static class Liveness
{
    public static bool IsLive(Workload? record, WorkloadStatus? status, long statusLease, bool nodeAlive) =>
        record is { Job: false } && status is not null && status.Running && status.Healthy && statusLease != 0 && nodeAlive;

    /// <summary>Which condition of the rule fails, for people (null when live).</summary>
    public static string? WhyNot(Workload? record, WorkloadStatus? status, long statusLease, bool nodeAlive) =>
        record is null ? "no record"
        : record.Job ? "a job (never served)"
        : status is null ? "no status (agent?)"
        : !nodeAlive ? "node has no heartbeat"
        : statusLease == 0 ? "status without a lease"
        : !status.Running ? "not running"
        : !status.Healthy ? "unhealthy: " + (status.Reason ?? "?")
        : null;
}

/// <summary>Orders plain strings (workload ids) in a <see cref="PersistentSortedSet{T, TKeyOf}"/>.</summary>
public readonly struct SelfKey : IKeyOf<string>
{
    public static string Key(string item) => item;
}

/// <summary>The live workloads at one address (more than one only while an address is being reused).</summary>
public sealed class AddressEntry(string address, ViewSet views)
{
    public string Address { get; } = address;
    public ViewSet Views { get; } = views;

    public readonly struct KeyByAddress : IKeyOf<AddressEntry>
    {
        public static string Key(AddressEntry item) => item.Address;
    }
}

public readonly record struct ServiceKey(string App, string Entrypoint)
{
    public override string ToString() => $"{Entrypoint}.{App}";
}

public readonly record struct TagKey(string App, string Entrypoint, string Tag)
{
    public override string ToString() => $"{Tag}.{Entrypoint}.{App}";
}

public readonly record struct LabelKey(string Key, string Value)
{
    public override string ToString() => $"{Key}={Value}";
}
