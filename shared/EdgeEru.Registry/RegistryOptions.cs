namespace EdgeEru.Registry;

/// <summary>Where the registry is: bound from configuration section "Registry" (appsettings, ERU_ env vars, flags).</summary>
public sealed class RegistryOptions
{
    public const string Section = "Registry";

    /// <summary>etcd client URLs, comma separated; tried in order, the next one on failure.</summary>
    public string Endpoints { get; set; } = "http://127.0.0.1:2379";

    public string Prefix { get; set; } = RegistryKeys.DefaultPrefix;

    /// <summary>Deadline of one etcd request.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>HTTP/2 keep-alive pings: how a silent network partition is noticed on a watch stream.</summary>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a follower keeps serving a heartbeat or status whose lease went (docs/registry.md, "Registry
    /// flaps"). When etcd stalls past the lease TTL every lease expires at once on its return, and the agents
    /// write everything again a moment later: held for this long, that moment is never seen as "nothing is
    /// live". A key written again within it was never gone; a really dead node leaves after TTL + this.
    /// Zero (the default, and what writers such as Core want): deletions take effect at once.
    /// </summary>
    public TimeSpan LivenessGrace { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// PEM file of the CA(s) that signed the etcd members' certificates, for https:// endpoints. Empty: the
    /// system's trusted CAs. Set, only these CAs are trusted (a private CA is the usual case).
    /// </summary>
    public string TlsCa { get; set; } = "";

    /// <summary>
    /// PEM client certificate presented to etcd (members run with <c>--client-cert-auth</c>). With etcd auth
    /// enabled, its common name is the etcd user whose roles apply: one certificate per service, no password.
    /// </summary>
    public string TlsCert { get; set; } = "";

    /// <summary>PEM private key of <see cref="TlsCert"/>.</summary>
    public string TlsKey { get; set; } = "";

    public bool UsesTlsFiles => TlsCa.Length > 0 || TlsCert.Length > 0 || TlsKey.Length > 0;

    /// <summary>The endpoints, after checking them and the TLS settings that go with them.</summary>
    public IReadOnlyList<Uri> ParseEndpoints()
    {
        var list = new List<Uri>();
        foreach (var part in Endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new ArgumentException($"Registry:Endpoints: \"{part}\" is not an http:// or https:// URL");
            list.Add(uri);
        }
        if (list.Count == 0) throw new ArgumentException("Registry:Endpoints is empty");
        if (LivenessGrace < TimeSpan.Zero || LivenessGrace > TimeSpan.FromMinutes(10))
            throw new ArgumentException($"Registry:LivenessGrace {LivenessGrace} must be between 00:00:00 and 00:10:00");
        if (UsesTlsFiles && list.FirstOrDefault(u => u.Scheme != "https") is { } plain)
            throw new ArgumentException($"Registry:Endpoints: \"{plain}\" is not https:// but Registry:TlsCa/TlsCert/TlsKey are set");
        if ((TlsCert.Length > 0) != (TlsKey.Length > 0))
            throw new ArgumentException("Registry:TlsCert and Registry:TlsKey go together: set both or neither");
        foreach (var (setting, path) in new[] { ("TlsCa", TlsCa), ("TlsCert", TlsCert), ("TlsKey", TlsKey) })
            if (path.Length > 0 && !File.Exists(path)) throw new ArgumentException($"Registry:{setting}: file \"{path}\" does not exist");
        return list;
    }
}
