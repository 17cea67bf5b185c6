using EdgeEru.Registry.Model;

namespace EdgeEru.Lb.Backends;

/// <summary>How a backend's workloads are spoken to.</summary>
internal enum UpstreamProtocol { Http1, H2c }

/// <summary>
/// A backend node's options, compiled once with its graph: what forwarding one of its requests needs, with the
/// registry's strings (<c>"p2c"</c>, <c>"cookie"</c>, <c>"h2c"</c>) turned into values, so no request compares them.
/// </summary>
internal sealed class BackendSettings
{
    private BackendSettings(string nodeId, LbBackendOptions? options)
    {
        Options = options;
        Policy = LoadBalancingPolicies.Named(options?.Policy);
        Retries = options?.Retries ?? 1;
        TimeoutMs = options?.TimeoutMs ?? 30_000;
        MaxBodyBytes = options?.MaxBodyBytes ?? 0;
        Protocol = options?.Protocol == "h2c" ? UpstreamProtocol.H2c : UpstreamProtocol.Http1;
        // One cookie per backend node, so two backends of a domain do not overwrite each other's choice.
        AffinityCookie = options?.Affinity == "cookie" ? "eru_affinity_" + nodeId : null;
        Edits = HeaderEdits.Of(options);
    }

    public static BackendSettings Compile(string nodeId, LbBackendOptions? options) => new(nodeId, options);

    /// <summary>The options as the registry holds them (null: all defaults).</summary>
    public LbBackendOptions? Options { get; }

    public ILoadBalancingPolicy Policy { get; }

    /// <summary>Further destinations an idempotent request may try after one was unreachable or too slow.</summary>
    public int Retries { get; }

    /// <summary>Activity timeout of a request to a workload (504 before the answer starts).</summary>
    public int TimeoutMs { get; }

    /// <summary>Bodies declared larger are refused with 413 (0: no limit).</summary>
    public long MaxBodyBytes { get; }

    public UpstreamProtocol Protocol { get; }

    /// <summary>The cookie that keeps a client on one workload (<c>affinity: "cookie"</c>); null: none.</summary>
    public string? AffinityCookie { get; }

    public HeaderEdits Edits { get; }
}
