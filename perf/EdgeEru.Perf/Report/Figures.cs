namespace EdgeEru.Perf.Report;

public enum Better
{
    Higher,
    Lower,
}

/// <summary>A figure of ours next to the same figure of the anchor measured in the same run.</summary>
public sealed record Comparison(string Benchmark, string Figure, string Ours, string Anchor, string AnchorName, string Unit, Better Better);

/// <summary>A figure held to a fixed target (the benchmark's own <c>targets_met</c> checks the same).</summary>
public sealed record Target(string Benchmark, string Figure, string Key, string Op, double Limit, string Unit)
{
    public bool Met(double value) => Op switch
    {
        "<" => value < Limit,
        "<=" => value <= Limit,
        ">=" => value >= Limit,
        "==" => value == Limit,
        _ => throw new InvalidOperationException($"unknown target operator {Op}"),
    };
}

/// <summary>A bar chart: one group of bars per category, one bar per series; a key that is absent leaves its bar out.</summary>
public sealed record ChartSpec(
    string File, string Benchmark, string Title, string Unit, IReadOnlyList<string> Categories, IReadOnlyList<ChartSeries> Series);

public sealed record ChartSeries(string Name, IReadOnlyList<string> Keys);

/// <summary>
/// What the report shows of each benchmark, by the keys its RESULT line carries (see the *Benchmark.cs
/// files). A benchmark not described here (or a key it no longer emits) still appears: the report lists
/// every figure of every RESULT line, and its ratio keys.
/// </summary>
public static class Figures
{
    public static readonly IReadOnlyList<Comparison> Comparisons =
    [
        new("registry", "full snapshot build (100k workloads)", "full_build_ms", "anchor_raw_range_ms",
            "raw etcd read of the same keys (the faster of plain paging and tiled)", "ms", Better.Lower),
        new("schedule", "plan 1M instances over 5,000 nodes", "planning_s", "anchor_c1m_s",
            "Nomad C1M (scheduled, 2015)", "s", Better.Lower),
        new("deploy", "50 containers over 4 hosts", "eru_s", "docker_run_s", "docker run loop", "s", Better.Lower),
        new("deploy", "50 containers over 4 hosts", "eru_s", "docker_run_parallel_per_host_s",
            "one docker run loop per host, in parallel", "s", Better.Lower),
        new("dns", "queries per second", "eru_qps", "knot_qps", "Knot DNS, same 10k services", "qps", Better.Higher),
        new("dns", "average latency", "eru_avg_latency_ms", "knot_avg_latency_ms", "Knot DNS", "ms", Better.Lower),
        new("dns", "queries per second, the dev cluster's zone (six instances)", "small_eru_qps", "small_knot_qps",
            "Knot DNS, same small zone", "qps", Better.Higher),
        new("lb", "requests per second", "eru_rps", "nginx_rps", "nginx proxy_pass", "rps", Better.Higher),
        new("lb", "requests per second", "eru_rps", "direct_rps", "backend without a proxy", "rps", Better.Higher),
        new("lb", "p99 latency", "eru_p99_ms", "nginx_p99_ms", "nginx proxy_pass", "ms", Better.Lower),
        new("lb", "proxy CPU per request", "eru_cpu_us_per_request", "nginx_cpu_us_per_request", "nginx proxy_pass", "µs", Better.Lower),
        new("lb", "proxy memory (RSS)", "eru_rss_mb", "nginx_rss_mb", "nginx proxy_pass", "MB", Better.Lower),
        new("lb", "requests per second over TLS (wrk, HTTP/1.1)", "tls_eru_rps", "tls_nginx_rps", "nginx proxy_pass, ssl", "rps",
            Better.Higher),
        new("lb", "p99 latency over TLS (wrk, HTTP/1.1)", "tls_eru_p99_ms", "tls_nginx_p99_ms", "nginx proxy_pass, ssl", "ms",
            Better.Lower),
        new("lb", "requests per second over HTTP/2 (h2load)", "h2_eru_rps", "h2_nginx_rps", "nginx proxy_pass, ssl http2", "rps",
            Better.Higher),
        new("lb", "p99 latency over HTTP/2 (h2load)", "h2_eru_p99_ms", "h2_nginx_p99_ms", "nginx proxy_pass, ssl http2", "ms",
            Better.Lower),
        new("agent", "container death → status p50", "death_to_status_p50_ms", "anchor_docker_die_event_p50_ms",
            "Docker's own die event", "ms", Better.Lower),
        new("agent", "container death → status p99", "death_to_status_p99_ms", "anchor_docker_die_event_p99_ms",
            "Docker's own die event", "ms", Better.Lower),
        new("agent", "log lines per second", "log_lines_per_s_at_tcp_sink", "anchor_docker_logs_lines_per_s",
            "docker logs", "lines/s", Better.Higher),
        new("ssh", "`ssh … true` p50", "eru_true_p50_ms", "sshd_true_p50_ms", "OpenSSH sshd + docker exec", "ms", Better.Lower),
        new("ssh", "`ssh … true` p99", "eru_true_p99_ms", "sshd_true_p99_ms", "OpenSSH sshd + docker exec", "ms", Better.Lower),
        new("ssh", "1 GiB out of a container", "eru_mib_s", "sshd_mib_s", "OpenSSH sshd + docker exec", "MiB/s", Better.Higher),
        new("ssh", "setup p99, 100 sessions opened at once", "eru_concurrent_setup_p99_ms", "sshd_concurrent_setup_p99_ms",
            "OpenSSH sshd + docker exec", "ms", Better.Lower),
        new("ssh", "server memory (RSS) with 100 sessions open", "eru_rss_mb_100_sessions", "sshd_rss_mb_100_sessions",
            "OpenSSH: every sshd process, summed (docker exec clients apart)", "MB", Better.Lower),
        new("multidc", "request to the other datacenter through eru-lb, p50", "cross_dc_p50_ms", "direct_to_other_dc_p50_ms",
            "the same request straight to that instance, no balancer", "ms", Better.Lower),
        new("multidc", "request through eru-lb, p50", "cross_dc_p50_ms", "local_p50_ms",
            "the same request kept in the local datacenter (the WAN link adds its delay each way)", "ms", Better.Lower),
    ];

    public static readonly IReadOnlyList<Target> Targets =
    [
        new("registry", "full snapshot build vs a raw read of the same keys", "full_build_vs_raw_range", "<=", 1.1, "×"),
        new("registry", "change visible to a follower, p99 (from etcd's ack)", "update_from_ack_p99_ms", "<", 5, "ms"),
        new("registry", "snapshot memory per workload", "bytes_per_workload", "<", 1024, "B"),
        new("schedule", "speed-up over Nomad's C1M", "speedup_vs_c1m", ">=", 10, "×"),
        new("schedule", "placements per second", "placements_per_s", ">=", 300_000, "/s"),
        new("schedule", "placements per second, 30% of apps binding CPUs", "placements_per_s_cpu_bind_30", ">=", 300_000, "/s"),
        new("schedule", "overcommitted nodes (both passes)", "overcommitted_nodes", "==", 0, "nodes"),
        new("deploy", "time vs a docker run loop", "ratio", "<=", 1.2, "×"),
        new("deploy", "time vs one docker run loop per host, in parallel", "ratio_vs_parallel_docker_run", "<=", 0.9, "×"),
        new("dns", "QPS ratio vs Knot, 100k workloads", "qps_ratio_vs_knot", ">=", 1.3, "×"),
        new("dns", "QPS ratio vs Knot, the dev cluster's zone", "small_qps_ratio_vs_knot", ">=", 1.2, "×"),
        new("dns", "registry change → answer, p99", "propagation_p99_ms", "<=", 20, "ms"),
        new("dns", "eru-dns working set at 100k workloads", "eru_working_set_mb", "<=", 250, "MB"),
        new("ssh", "setup p50 (`ssh … true`) vs sshd + docker exec", "setup_p50_ratio_vs_sshd", "<", 1.0, "×"),
        new("ssh", "throughput vs sshd + docker exec", "throughput_ratio_vs_sshd", ">=", 1.0, "×"),
        new("ssh", "setup p99 with 100 sessions at once vs sshd + docker exec", "concurrent_setup_p99_ratio_vs_sshd", "<=", 1.0, "×"),
        new("ssh", "RSS with 100 sessions open vs every sshd process", "rss_ratio_vs_sshd_100_sessions", "<=", 1.0, "×"),
        new("lb", "RPS ratio vs nginx", "rps_ratio_vs_nginx", ">=", 1.0, "×"),
        new("lb", "p99 latency vs nginx", "p99_ratio_vs_nginx", "<=", 0.8, "×"),
        new("lb", "memory (RSS, with the backend) vs nginx", "rss_ratio_vs_nginx", "<=", 2.0, "×"),
        new("lb", "rule graph change → routing, p99", "graph_change_p99_ms", "<=", 100, "ms"),
        new("lb", "health change → routing, p99", "health_change_p99_ms", "<=", 100, "ms"),
        new("lb", "failed requests during a rolling replace", "rolling_replace_failed", "==", 0, "requests"),
        new("agent", "container death → status p50 vs Docker's die event", "death_to_status_p50_ratio_vs_die_event", "<=", 1.2, "×"),
        new("agent", "agent memory (RSS) with 200 containers", "agent_rss_mb", "<=", 80, "MB"),
        new("agent", "dropped log lines", "log_lines_dropped", "==", 0, "lines"),
        new("self-hosting", "failed requests: replica killed, eru-lb replaced, edge rebuilt", "failed_requests", "==", 0, "requests"),
        new("chaos", "failed DNS, HTTP and SSH requests over eight faults", "failed_requests", "==", 0, "requests"),
        new("chaos", "containers no record knows, after the run", "leaked_workloads", "==", 0, "workloads"),
        new("chaos", "records without their container, after the run", "lost_workloads", "==", 0, "workloads"),
        new("multidc", "DNS answers the other datacenter, p99 (from etcd's ack)", "dns_failover_p99_ms", "<=", 1000, "ms"),
        new("multidc", "LB sends to the other datacenter, p99 (from etcd's ack)", "lb_failover_p99_ms", "<=", 100, "ms"),
        new("multidc", "LB sends to the other datacenter, local instance killed", "lb_failover_instance_killed_max_ms", "<=", 100, "ms"),
        new("multidc", "failed requests while failing over", "lb_failover_failed_requests", "==", 0, "requests"),
    ];

    public static readonly IReadOnlyList<ChartSpec> Charts =
    [
        new("registry-build.svg", "registry", "Registry: full snapshot build vs a raw etcd read (lower is better)", "ms",
            ["100k workloads"],
            [new("EdgeEru snapshot", ["full_build_ms"]), new("raw etcd read", ["anchor_raw_range_ms"])]),
        new("schedule.svg", "schedule", "Schedule: planning 1M instances over 5,000 nodes vs Nomad C1M (lower is better)", "s",
            ["1M instances"], [new("EdgeEru scheduler", ["planning_s"]), new("Nomad C1M", ["anchor_c1m_s"])]),
        new("deploy.svg", "deploy", "Deploy: 50 containers over 4 hosts (lower is better)", "s", ["wall time"],
            [new("eru (Deployer)", ["eru_s"]), new("docker run loop", ["docker_run_s"]),
                new("docker run, a loop per host", ["docker_run_parallel_per_host_s"])]),
        new("dns-qps.svg", "dns", "DNS: queries per second, eru-dns vs Knot (higher is better)", "qps",
            ["dev cluster's zone", "10k services"],
            [new("eru-dns", ["small_eru_qps", "eru_qps"]), new("Knot DNS", ["small_knot_qps", "knot_qps"])]),
        new("lb-rps.svg", "lb", "LB: requests per second, direct vs nginx vs eru-lb (higher is better)", "rps", ["wrk, same backend"],
            [new("direct", ["direct_rps"]), new("nginx", ["nginx_rps"]), new("eru-lb", ["eru_rps"])]),
        new("lb-tls.svg", "lb", "LB: requests per second over TLS, nginx vs eru-lb (higher is better)", "rps",
            ["HTTP/1.1 (wrk)", "HTTP/2 (h2load)"],
            [new("nginx", ["tls_nginx_rps", "h2_nginx_rps"]), new("eru-lb", ["tls_eru_rps", "h2_eru_rps"])]),
        new("lb-cpu.svg", "lb", "LB: proxy CPU per request (lower is better)", "µs", ["CPU per request"],
            [new("nginx", ["nginx_cpu_us_per_request"]), new("eru-lb", ["eru_cpu_us_per_request"])]),
        new("agent-logs.svg", "agent", "Agent: log lines per second, TCP sink vs docker logs (higher is better)", "lines/s",
            ["log throughput"],
            [new("eru-agent → TCP sink", ["log_lines_per_s_at_tcp_sink"]), new("docker logs", ["anchor_docker_logs_lines_per_s"])]),
        new("agent-death.svg", "agent", "Agent: container death → status vs Docker's die event (lower is better)", "ms", ["p50", "p99"],
            [new("eru-agent status", ["death_to_status_p50_ms", "death_to_status_p99_ms"]),
                new("docker die event", ["anchor_docker_die_event_p50_ms", "anchor_docker_die_event_p99_ms"])]),
        new("ssh-setup.svg", "ssh", "SSH: `ssh … true` setup time, eru-ssh vs sshd + docker exec (lower is better)", "ms", ["p50", "p99"],
            [new("eru-ssh", ["eru_true_p50_ms", "eru_true_p99_ms"]), new("sshd + docker exec", ["sshd_true_p50_ms", "sshd_true_p99_ms"])]),
        new("ssh-concurrent.svg", "ssh", "SSH: 100 sessions opened at once, setup time (lower is better)", "ms", ["p50", "p99"],
            [new("eru-ssh", ["eru_concurrent_setup_p50_ms", "eru_concurrent_setup_p99_ms"]),
                new("sshd + docker exec", ["sshd_concurrent_setup_p50_ms", "sshd_concurrent_setup_p99_ms"])]),
        new("ssh-throughput.svg", "ssh", "SSH: 1 GiB out of a container (higher is better)", "MiB/s", ["throughput"],
            [new("eru-ssh", ["eru_mib_s"]), new("sshd + docker exec", ["sshd_mib_s"])]),
    ];

    /// <summary>The order benchmarks are run and reported in (perf/run.sh all runs the same list).</summary>
    public static readonly IReadOnlyList<string> Benchmarks =
        ["registry", "schedule", "deploy", "agent", "dns", "lb", "ssh", "self-hosting", "chaos", "multidc"];
}
