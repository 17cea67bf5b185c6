using System.Net;

namespace EdgeEru.Dns.Forwarding;

/// <summary>Configuration section "Dns:Forward". Off unless <see cref="Upstreams"/> is set: never an open resolver.</summary>
public sealed class ForwardOptions
{
    /// <summary>Resolvers for names outside our zones, "address" or "address:port", tried in order.</summary>
    public List<string> Upstreams { get; set; } = [];

    /// <summary>Client networks that may use forwarding; others get REFUSED.</summary>
    public List<string> AllowFrom { get; set; } = [];

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>An upstream that failed this many times in a row is skipped for <see cref="DownFor"/>.</summary>
    public int FailuresBeforeDown { get; set; } = 3;

    public TimeSpan DownFor { get; set; } = TimeSpan.FromSeconds(30);

    public int CacheEntries { get; set; } = 10_000;

    /// <summary>Longest time an answer is cached, whatever its TTL.</summary>
    public uint CacheMaxTtl { get; set; } = 300;

    public bool Enabled => Upstreams.Count > 0;

    /// <summary>Loopback only, unless configured.</summary>
    public IReadOnlyList<string> EffectiveAllowFrom => AllowFrom.Count > 0 ? AllowFrom : ["127.0.0.0/8", "::1/128"];

    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        foreach (var u in Upstreams)
            if (!IPEndPoint.TryParse(u, out _)) p.Add($"Dns:Forward:Upstreams: \"{u}\" is not an address or address:port");
        foreach (var a in AllowFrom)
            if (!IPNetwork.TryParse(a, out _)) p.Add($"Dns:Forward:AllowFrom: \"{a}\" is not a CIDR network");
        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromSeconds(30)) p.Add($"Dns:Forward:Timeout {Timeout} is outside (0, 30s]");
        if (CacheEntries < 0) p.Add("Dns:Forward:CacheEntries must not be negative");
        return p;
    }

    public IReadOnlyList<IPEndPoint> ParseUpstreams() =>
        Upstreams.Select(u =>
        {
            var ep = IPEndPoint.Parse(u);
            return ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep;
        }).ToList();
}
