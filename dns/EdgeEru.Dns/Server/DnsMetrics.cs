using EdgeEru.Dns.Response;
using EdgeEru.Dns.Tables;
using EdgeEru.Dns.Wire;
using Prometheus;

namespace EdgeEru.Dns.Server;

/// <summary>The server's Prometheus metrics. Counter children are created up front: the hot path only increments.</summary>
internal sealed class DnsMetrics
{
    private static readonly ushort[] Types =
        [DnsType.A, DnsType.AAAA, DnsType.SRV, DnsType.TXT, DnsType.PTR, DnsType.SOA, DnsType.NS, DnsType.ANY];
    private static readonly int[] Rcodes =
        [DnsRcode.NoError, DnsRcode.FormErr, DnsRcode.ServFail, DnsRcode.NxDomain, DnsRcode.NotImp, DnsRcode.Refused, DnsRcode.BadVers];

    private readonly Counter.Child[,,] _queries; // [transport, type, rcode]
    private readonly Counter.Child _dropped;
    private readonly Histogram _latency;
    private readonly Gauge _revision;
    private readonly Gauge _services;
    private readonly Histogram _build;
    private readonly Gauge _tableTime;
    private readonly Counter _forwarded;
    private readonly Gauge _upstreamUp;

    public DnsMetrics()
    {
        var queries = Metrics.CreateCounter("eru_dns_queries_total", "DNS queries answered, by transport, query type and response code.",
            new CounterConfiguration { LabelNames = ["transport", "qtype", "rcode"] });
        string[] transports = ["udp", "tcp"];
        _queries = new Counter.Child[2, Types.Length + 1, Rcodes.Length + 1];
        for (var t = 0; t < 2; t++)
            for (var q = 0; q <= Types.Length; q++)
                for (var r = 0; r <= Rcodes.Length; r++)
                    _queries[t, q, r] = queries.WithLabels(transports[t], q < Types.Length ? DnsType.Name(Types[q]) : "other",
                        r < Rcodes.Length ? DnsRcode.Name(Rcodes[r]) : "other");
        _dropped = Metrics.CreateCounter("eru_dns_dropped_total", "Packets not answered (too short, or a response).").WithLabels();
        _latency = Metrics.CreateHistogram("eru_dns_query_duration_seconds",
            "Time from a query's arrival to its response being handed to the socket.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.000005, 2, 16) });
        _revision = Metrics.CreateGauge("eru_dns_table_revision", "Registry revision the served answers were built from.");
        _services = Metrics.CreateGauge("eru_dns_services", "Services with live instances, over all zones.");
        _build = Metrics.CreateHistogram("eru_dns_table_build_seconds", "Time to rebuild the answers from a new registry snapshot.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.00001, 2, 20) });
        _tableTime = Metrics.CreateGauge("eru_dns_table_timestamp_seconds", "Unix time the served answers were built.");
        _forwarded = Metrics.CreateCounter("eru_dns_forwarded_total",
            "Queries for other names: answered from the cache, by an upstream, or an upstream failure.",
            new CounterConfiguration { LabelNames = ["result"] });
        _upstreamUp = Metrics.CreateGauge("eru_dns_upstream_up",
            "1 while a forwarding upstream is in use, 0 while it is skipped after failures.",
            new GaugeConfiguration { LabelNames = ["upstream"] });
    }

    public void Query(bool tcp, QueryOutcome outcome)
    {
        if (outcome.Dropped)
        {
            _dropped.Inc();
            return;
        }
        var q = Array.IndexOf(Types, outcome.QType);
        var r = Array.IndexOf(Rcodes, outcome.Rcode);
        _queries[tcp ? 1 : 0, q < 0 ? Types.Length : q, r < 0 ? Rcodes.Length : r].Inc();
    }

    /// <summary>Latency of one query in <see cref="LatencySample"/>: a histogram is the priciest thing on the UDP path.</summary>
    public void Latency(double seconds) => _latency.Observe(seconds);

    public const int LatencySample = 16;

    public void Forwarded(string result) => _forwarded.WithLabels(result).Inc();

    /// <summary>Exports each upstream's health when /metrics is scraped.</summary>
    public void WatchUpstreams(Forwarding.Forwarder forwarder)
    {
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            foreach (var (endPoint, isUp) in forwarder.Health()) _upstreamUp.WithLabels(endPoint.ToString()).Set(isUp ? 1 : 0);
        });
    }

    public void TableBuilt(DnsTable table, TimeSpan took)
    {
        _revision.Set(table.Snapshot.Revision);
        _services.Set(table.Zones.Sum(z => z.Services.Count));
        _build.Observe(took.TotalSeconds);
        _tableTime.SetToCurrentTimeUtc();
    }
}
