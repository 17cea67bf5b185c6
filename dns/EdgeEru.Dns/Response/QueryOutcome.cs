namespace EdgeEru.Dns.Response;

/// <summary>What happened to one query, for metrics and logs.</summary>
internal readonly record struct QueryOutcome(int Length, ushort QType, int Rcode, bool NotOurs = false, int ClientUdpLimit = 0)
{
    /// <summary>No response at all: too short to carry an id, or a response rather than a query.</summary>
    public bool Dropped => Length == 0;
}
