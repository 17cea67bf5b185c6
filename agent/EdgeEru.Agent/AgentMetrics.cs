using Prometheus;

namespace EdgeEru.Agent;

/// <summary>
/// The agent's own health on /metrics: Docker and etcd reachability, events, checks, registry writes. Labelled by node
/// (tests run several agents in one process).
/// </summary>
internal sealed class AgentMetrics(string node)
{
    private static readonly Counter Events = Metrics.CreateCounter("eru_agent_docker_events_total",
        "Docker container events seen, by action.", new CounterConfiguration { LabelNames = ["node", "action"] });
    private static readonly Counter Checks = Metrics.CreateCounter("eru_agent_health_checks_total", "Health checks run, by result.",
        new CounterConfiguration { LabelNames = ["node", "result"] });
    private static readonly Counter Writes = Metrics.CreateCounter("eru_agent_etcd_writes_total",
        "Registry writes (puts and deletes), by what was written.", new CounterConfiguration { LabelNames = ["node", "kind"] });
    private static readonly Gauge Docker = Metrics.CreateGauge("eru_agent_docker_up", "1 while Docker answers.",
        new GaugeConfiguration { LabelNames = ["node"] });
    private static readonly Gauge Etcd = Metrics.CreateGauge("eru_agent_etcd_up", "1 while the last registry round succeeded.",
        new GaugeConfiguration { LabelNames = ["node"] });
    private static readonly Gauge ContainerCount = Metrics.CreateGauge("eru_agent_containers", "EdgeEru containers on the node, by state.",
        new GaugeConfiguration { LabelNames = ["node", "state"] });

    // "health_status: healthy" → "health_status": a bounded label set.
    public void Event(string action) => Events.WithLabels(node, action.Split(':')[0]).Inc();
    public void Check(bool ok) => Checks.WithLabels(node, ok ? "ok" : "fail").Inc();
    public void Write(string kind) => Writes.WithLabels(node, kind).Inc();
    public void DockerUp(bool up) => Docker.WithLabels(node).Set(up ? 1 : 0);
    public void EtcdUp(bool up) => Etcd.WithLabels(node).Set(up ? 1 : 0);

    public void Containers(int running, int stopped)
    {
        ContainerCount.WithLabels(node, "running").Set(running);
        ContainerCount.WithLabels(node, "stopped").Set(stopped);
    }
}
