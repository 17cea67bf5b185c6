using Prometheus;

namespace EdgeEru.Mimiron.Sessions;

/// <summary>The gateway's Prometheus metrics.</summary>
public sealed class GatewayMetrics
{
    public Counter Logins { get; } = Metrics.CreateCounter("eru_ssh_logins_total", "Login attempts by result", "result");
    public Counter Sessions { get; } = Metrics.CreateCounter("eru_ssh_sessions_total", "Sessions by how they ended", "result");
    public Gauge ActiveSessions { get; } = Metrics.CreateGauge("eru_ssh_sessions_active", "Sessions running now");
    public Counter Bytes { get; } = Metrics.CreateCounter("eru_ssh_session_bytes_total", "Bytes through sessions", "direction");
}
