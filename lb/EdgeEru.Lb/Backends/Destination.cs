using System.Security.Cryptography;
using System.Text;

namespace EdgeEru.Lb.Backends;

/// <summary>One live workload's port, as a place to send requests. Kept across snapshots so its counters survive.</summary>
internal sealed class Destination(string workloadId, string address, int port)
{
    private int _inFlight;
    private long _requests;
    private long _ejectedUntilTicks;

    public string WorkloadId { get; } = workloadId;
    public string Address { get; } = address;
    public int Port { get; } = port;

    /// <summary>Where to connect (either family), parsed once: null when the registry's address text is no IP address.</summary>
    public System.Net.IPEndPoint? EndPoint { get; } =
        System.Net.IPAddress.TryParse(address, out var ip) ? new System.Net.IPEndPoint(ip, port) : null;

    /// <summary>The Host header a workload gets: its own address and port.</summary>
    public string Authority { get; } = address.Contains(':', StringComparison.Ordinal) ? $"[{address}]:{port}" : $"{address}:{port}";

    /// <summary>The URL prefix YARP forwards to.</summary>
    public string Prefix { get; } =
        address.Contains(':', StringComparison.Ordinal) ? $"http://[{address}]:{port}/" : $"http://{address}:{port}/";

    /// <summary>
    /// What the affinity cookie holds: a hash of workload, address and port, the same in every LB
    /// instance (so a client keeps its workload behind several LBs) and saying nothing about the inside.
    /// </summary>
    public string AffinityKey { get; } =
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Key(workloadId, address, port))).AsSpan(0, 8));

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// The kept-alive HTTP/1.1 connections to this destination (an <c>Http1.UpstreamPool</c>, made on first use):
    /// kept here so a request finds them without a lookup, and typed object so that where requests go does not
    /// depend on how they get there.
    /// </summary>
    public object? Connections;

    /// <summary>Requests sent here since the destination appeared (the dashboard derives a rate).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Passive health: ejected for a while after a transport failure.</summary>
    public bool IsEjected => Interlocked.Read(ref _ejectedUntilTicks) > DateTime.UtcNow.Ticks;

    /// <summary>Active health: out after the backend's check failed often enough in a row, back after it passed.</summary>
    public bool FailsCheck => Volatile.Read(ref _failsCheck);

    /// <summary>Not to be picked while another destination is available: ejected or failing its check.</summary>
    public bool IsOut => FailsCheck || IsEjected;

    private bool _failsCheck;
    private int _checkStreak; // positive: passes in a row; negative: failures in a row

    /// <summary>Records one check result; returns true when that changed whether the destination is in.</summary>
    public bool RecordCheck(bool passed, int unhealthyAfter, int healthyAfter)
    {
        var streak = passed ? Math.Max(_checkStreak, 0) + 1 : Math.Min(_checkStreak, 0) - 1;
        _checkStreak = streak;
        var fails = FailsCheck;
        if (!fails && -streak >= unhealthyAfter) Volatile.Write(ref _failsCheck, true);
        else if (fails && streak >= healthyAfter) Volatile.Write(ref _failsCheck, false);
        return fails != FailsCheck;
    }

    public void Begin()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    public void End() => Interlocked.Decrement(ref _inFlight);
    /// <summary>A connect failure or timeout: out of picking for 10 s (passive health), said in the log.</summary>
    public void Failed(string error, ILogger log)
    {
        Eject(TimeSpan.FromSeconds(10));
        log.LogWarning("backend {Destination} ({Workload}) failed: {Error}; ejected for 10s", Prefix, WorkloadId, error);
    }

    public void Eject(TimeSpan period) => Interlocked.Exchange(ref _ejectedUntilTicks, (DateTime.UtcNow + period).Ticks);

    public static string Key(string workloadId, string address, int port) => $"{workloadId}|{address}|{port}";
}
