using EdgeEru.Registry.Model;

namespace EdgeEru.Agent;

/// <summary>The "Agent" section of eru-agent's configuration.</summary>
public sealed class AgentServiceOptions
{
    public const string Section = "Agent";

    /// <summary>This host's node name (as registered under nodes/).</summary>
    public string Node { get; set; } = "";

    /// <summary>The Docker engine to watch.</summary>
    public string Docker { get; set; } = "unix:///var/run/docker.sock";

    /// <summary>For a tcp:// engine behind --tlsverify: PEM client certificate and key, and the CA its certificate chains to.</summary>
    public string? DockerTlsCertPath { get; set; }
    public string? DockerTlsKeyPath { get; set; }
    public string? DockerTlsCaPath { get; set; }

    public DockerEndpoint DockerEndpoint =>
        new() { Address = Docker, TlsCertPath = DockerTlsCertPath, TlsKeyPath = DockerTlsKeyPath, TlsCaPath = DockerTlsCaPath };

    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(9);
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait between attempts while Docker does not answer.</summary>
    public TimeSpan DockerBackoffMax { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The URL others reach this agent's HTTP port at (published in its heartbeat); from Http:Urls when that names a host.
    /// </summary>
    public string? AdvertiseUrl { get; set; }

    public IReadOnlyList<string> Problems()
    {
        var e = new List<string>();
        if (!Names.IsLabel(Node)) e.Add($"Agent:Node \"{Node}\" must be a DNS label (the node's name in the registry)");
        foreach (var problem in DockerEndpoint.Validate()) e.Add("Agent:Docker: " + problem);
        if (LeaseTtl < TimeSpan.FromSeconds(2) || LeaseTtl > TimeSpan.FromMinutes(10))
            e.Add($"Agent:LeaseTtl {LeaseTtl} must be between 00:00:02 and 00:10:00");
        if (Interval < TimeSpan.FromMilliseconds(50) || Interval > TimeSpan.FromMinutes(1))
            e.Add($"Agent:Interval {Interval} must be between 00:00:00.05 and 00:01:00");
        if (DockerBackoffMax < TimeSpan.FromMilliseconds(100) || DockerBackoffMax > TimeSpan.FromMinutes(5))
            e.Add($"Agent:DockerBackoffMax {DockerBackoffMax} must be between 00:00:00.1 and 00:05:00");
        if (ReconcileInterval < Interval) e.Add($"Agent:ReconcileInterval {ReconcileInterval} must not be shorter than Agent:Interval");
        if (AdvertiseUrl is not null && (!Uri.TryCreate(AdvertiseUrl, UriKind.Absolute, out var a) || a.Scheme is not ("http" or "https")))
            e.Add($"Agent:AdvertiseUrl \"{AdvertiseUrl}\" must be an http:// or https:// URL");
        return e;
    }
}
