using System.Globalization;
using EdgeEru.Registry.Model;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EdgeEru.Core.Deploy;

/// <summary>
/// An app spec file in the style of ERU's app.yaml: the app's name and its entrypoints (command, ports,
/// health check, restart policy, hooks). Where and how many come from the deploy options, not the file.
/// </summary>
public sealed class AppSpec
{
    public string Appname { get; set; } = "";
    public Dictionary<string, EntrypointSpec> Entrypoints { get; set; } = [];

    /// <summary>Parses YAML; a syntax error or an unknown field is an <see cref="FormatException"/> naming line and column.</summary>
    public static AppSpec Parse(string yaml)
    {
        var deserializer = new DeserializerBuilder().WithNamingConvention(UnderscoredNamingConvention.Instance).Build();
        try
        {
            return deserializer.Deserialize<AppSpec?>(yaml) ?? throw new FormatException("the app spec is empty");
        }
        catch (YamlException ex)
        {
            var inner = ex.InnerException is null ? "" : ": " + ex.InnerException.Message;
            throw new FormatException($"line {ex.Start.Line}, column {ex.Start.Column}: {ex.Message}{inner}", ex);
        }
    }

    /// <summary>The deploy spec of one entrypoint; <paramref name="options"/> supplies image, count, pod and the rest.</summary>
    public DeploySpec ToDeploySpec(string entrypoint, DeploySpec options)
    {
        if (!Entrypoints.TryGetValue(entrypoint, out var e))
            throw new FormatException($"entrypoints: no entrypoint \"{entrypoint}\" (the spec has {string.Join(", ", Entrypoints.Keys.Order(StringComparer.Ordinal))})");
        var ports = e.Ports.Select((p, i) => ParsePort(p, $"entrypoints.{entrypoint}.ports[{i}]")).ToList();
        return options with
        {
            App = Appname,
            Entrypoint = entrypoint,
            Image = options.Image.Length > 0 ? options.Image : e.Image ?? "",
            Command = e.Cmd is null ? options.Command : CommandLine.Split(e.Cmd),
            WorkingDir = e.WorkingDir ?? options.WorkingDir,
            User = e.User ?? options.User,
            Env = [.. e.Env, .. options.Env],
            Ports = ports,
            Restart = e.Restart ?? options.Restart,
            Healthcheck = e.Healthcheck is null ? null : ToCheck(e.Healthcheck, ports, $"entrypoints.{entrypoint}.healthcheck"),
            AfterStart = e.Hook?.AfterStart ?? [],
            BeforeStop = e.Hook?.BeforeStop ?? [],
        };
    }

    /// <summary>"http:8080/tcp", "8080/udp", "8080", or a mapping with name, port, protocol.</summary>
    private static PublishedPort ParsePort(object value, string path)
    {
        if (value is Dictionary<object, object> map)
        {
            var name = map.GetValueOrDefault("name")?.ToString();
            var number = map.GetValueOrDefault("port")?.ToString();
            if (!int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                throw new FormatException($"{path}: port \"{number}\" is not a number");
            return new PublishedPort { Name = name ?? $"p{n}", Port = n, Protocol = map.GetValueOrDefault("protocol")?.ToString() ?? "tcp" };
        }
        var text = value.ToString() ?? "";
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var rest = colon < 0 ? text : text[(colon + 1)..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var numberText = slash < 0 ? rest : rest[..slash];
        if (!int.TryParse(numberText, NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            throw new FormatException($"{path}: \"{text}\" is not a port (name:port/protocol)");
        return new PublishedPort { Name = colon < 0 ? $"p{port}" : text[..colon], Port = port, Protocol = slash < 0 ? "tcp" : rest[(slash + 1)..] };
    }

    private static HealthCheckSpec ToCheck(HealthcheckSpec h, List<PublishedPort> ports, string path)
    {
        // Ports may be named or given by number (ERU's app.yaml used numbers).
        string PortName(string p, string field) =>
            ports.FirstOrDefault(x => x.Name == p || x.Port.ToString(CultureInfo.InvariantCulture) == p)?.Name
            ?? throw new FormatException($"{path}.{field}: \"{p}\" is not one of the entrypoint's ports");
        return new HealthCheckSpec
        {
            TcpPorts = [.. h.TcpPorts.Select(p => PortName(p, "tcp_ports"))],
            Http = h.HttpPort is null ? null : new HttpCheck { Port = PortName(h.HttpPort, "http_port"), Path = h.Url ?? "/", ExpectedCode = h.Code },
            IntervalMs = h.IntervalMs ?? 5000,
            TimeoutMs = h.TimeoutMs ?? 2000,
            HealthyAfter = h.HealthyAfter ?? 1,
            UnhealthyAfter = h.UnhealthyAfter ?? 3,
            StartGraceMs = h.StartGraceMs ?? 0,
        };
    }
}

public sealed class EntrypointSpec
{
    public string? Cmd { get; set; }
    public string? Image { get; set; }
    public string? WorkingDir { get; set; }
    public string? User { get; set; }
    public List<string> Env { get; set; } = [];
    public List<object> Ports { get; set; } = [];
    public HealthcheckSpec? Healthcheck { get; set; }
    public string? Restart { get; set; }
    public HookSpec? Hook { get; set; }
}

public sealed class HealthcheckSpec
{
    public List<string> TcpPorts { get; set; } = [];
    public string? HttpPort { get; set; }
    public string? Url { get; set; }
    public int Code { get; set; }
    public int? IntervalMs { get; set; }
    public int? TimeoutMs { get; set; }
    public int? HealthyAfter { get; set; }
    public int? UnhealthyAfter { get; set; }
    public int? StartGraceMs { get; set; }
}

public sealed class HookSpec
{
    public List<string> AfterStart { get; set; } = [];
    public List<string> BeforeStop { get; set; } = [];
}
