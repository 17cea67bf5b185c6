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
        return list;
    }
}
