using System.Globalization;
using EdgeEru.Docker;
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
            // YamlDotNet names our types ("Property 'volume' not found on type '...EntrypointSpec'"): say it in the spec's words.
            var unknown = System.Text.RegularExpressions.Regex.Match(
                ex.Message, @"^Property '([^']+)' not found on type '[\w.]*\.(\w+?)Spec'");
            var what = unknown.Success ? $"unknown field \"{unknown.Groups[1].Value}\" in {Section(unknown.Groups[2].Value)}" : ex.Message;
            var inner = ex.InnerException is null ? "" : ": " + ex.InnerException.Message;
            throw new FormatException($"line {ex.Start.Line}, column {ex.Start.Column}: {what}{inner}", ex);
        }
    }

    /// <summary>
    /// The deploy spec of one entrypoint; <paramref name="options"/> supplies image, count, pod and the rest.
    /// <paramref name="readFile"/> reads a data file's <c>file:</c> (relative to the spec's folder; the CLI's job).
    /// </summary>
    public DeploySpec ToDeploySpec(string entrypoint, DeploySpec options, Func<string, byte[]>? readFile = null)
    {
        if (!Entrypoints.TryGetValue(entrypoint, out var e))
            throw new FormatException($"entrypoints: no entrypoint \"{entrypoint}\" " +
                $"(the spec has {string.Join(", ", Entrypoints.Keys.Order(StringComparer.Ordinal))})");
        var at = $"entrypoints.{entrypoint}";
        var ports = e.Ports.Select((p, i) => ParsePort(p, $"{at}.ports[{i}]")).ToList();
        return options with
        {
            Volumes = [.. e.Volumes.Select((v, i) => VolumeSpec.Parse(v, $"{at}.volumes[{i}]")), .. options.Volumes],
            Files = [.. e.Data.Select(d => ParseFile(d.Key, d.Value, $"{at}.data", readFile)), .. options.Files],
            Secrets = [.. e.Secrets.Select((x, i) => ParseSecret(x, $"{at}.secrets[{i}]")), .. options.Secrets],
            Runtime = new RuntimeOptions
            {
                Privileged = e.Privileged ?? options.Runtime.Privileged,
                CapAdd = [.. e.CapAdd, .. options.Runtime.CapAdd],
                Sysctls = Merge(e.Sysctls, options.Runtime.Sysctls),
                Dns = e.Dns.Count > 0 ? e.Dns : options.Runtime.Dns,
                ExtraHosts = [.. e.ExtraHosts, .. options.Runtime.ExtraHosts],
                Ulimits = [.. e.Ulimits.Select(u => UlimitSpec.Parse(u.Key, u.Value, $"{at}.ulimits.{u.Key}")), .. options.Runtime.Ulimits],
                LogDriver = e.Log?.Driver ?? options.Runtime.LogDriver,
                LogOptions = e.Log is null ? options.Runtime.LogOptions : Merge(e.Log.Options, options.Runtime.LogOptions),
            },
            AfterCreate = e.Hook?.AfterCreate ?? [],
            IgnorePull = options.IgnorePull || e.IgnorePull == true,
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

    private static Dictionary<string, string> Merge(IReadOnlyDictionary<string, string> spec, IReadOnlyDictionary<string, string> options)
    {
        var merged = spec.ToDictionary(StringComparer.Ordinal);
        foreach (var (k, v) in options) merged[k] = v;
        return merged;
    }

    /// <summary>A data file: its content as a string, or a mapping with content or file, mode ("0640") and owner ("uid:gid").</summary>
    private static DataFile ParseFile(string path, object value, string where, Func<string, byte[]>? readFile)
    {
        where = $"{where}.{path}";
        if (value is not Dictionary<object, object> map)
            return new DataFile(path, System.Text.Encoding.UTF8.GetBytes(value.ToString() ?? ""));
        var unknown = map.Keys.Select(k => k.ToString()).FirstOrDefault(k => k is not ("content" or "file" or "mode" or "owner"));
        if (unknown is not null) throw new FormatException($"{where}: unknown field \"{unknown}\" (content, file, mode, owner)");
        var content = map.GetValueOrDefault("content")?.ToString();
        var file = map.GetValueOrDefault("file")?.ToString();
        if ((content is null) == (file is null)) throw new FormatException($"{where}: give either content or file");
        byte[] bytes;
        if (file is not null)
        {
            if (readFile is null)
                throw new FormatException($"{where}: file: is read by the eru CLI from the spec's folder; send content instead");
            try
            {
                bytes = readFile(file);
            }
            catch (IOException ex)
            {
                throw new FormatException($"{where}: cannot read {file}: {ex.Message}", ex);
            }
        }
        else bytes = System.Text.Encoding.UTF8.GetBytes(content!);
        var (uid, gid) = ParseOwner(map.GetValueOrDefault("owner")?.ToString(), where);
        return new DataFile(path, bytes, ParseMode(map.GetValueOrDefault("mode")?.ToString(), 0x1A4, where), uid, gid);
    }

    /// <summary>A secret: "name:/target" or a mapping with name, target, mode ("0400") and owner ("uid:gid").</summary>
    private static SecretMount ParseSecret(object value, string where)
    {
        if (value is Dictionary<object, object> map)
        {
            var unknown = map.Keys.Select(k => k.ToString()).FirstOrDefault(k => k is not ("name" or "target" or "mode" or "owner"));
            if (unknown is not null) throw new FormatException($"{where}: unknown field \"{unknown}\" (name, target, mode, owner)");
            var name = map.GetValueOrDefault("name")?.ToString() ?? throw new FormatException($"{where}: name is missing");
            var (uid, gid) = ParseOwner(map.GetValueOrDefault("owner")?.ToString(), where);
            return new SecretMount(name, map.GetValueOrDefault("target")?.ToString() ?? "/run/secrets/" + name,
                ParseMode(map.GetValueOrDefault("mode")?.ToString(), 0x100, where), uid, gid);
        }
        var text = value.ToString() ?? "";
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? new SecretMount(text, "/run/secrets/" + text) : new SecretMount(text[..colon], text[(colon + 1)..]);
    }

    private static int ParseMode(string? text, int fallback, string where)
    {
        if (text is null) return fallback;
        try
        {
            return Convert.ToInt32(text, 8);
        }
        catch (Exception ex) when (ex is FormatException or OverflowException or ArgumentException)
        {
            throw new FormatException($"{where}: mode \"{text}\" is not an octal file mode (e.g. \"0640\")", ex);
        }
    }

    private static (int Uid, int Gid) ParseOwner(string? text, string where)
    {
        if (text is null) return (0, 0);
        var parts = text.Split(':');
        if (parts.Length > 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
            || !int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            throw new FormatException($"{where}: owner \"{text}\" must be numeric UID or UID:GID");
        return (uid, gid);
    }

    private static string Section(string type) => type switch
    {
        "App" => "the app spec (appname, entrypoints)",
        "Entrypoint" => "an entrypoint",
        "Healthcheck" => "a healthcheck",
        "Hook" => "hook (after_create, after_start, before_stop)",
        "Log" => "log (driver, options)",
        _ => type,
    };

    /// <summary>"http:8080/tcp", "8080/udp", "8080", or a mapping with name, port, protocol.</summary>
    private static PublishedPort ParsePort(object value, string path)
    {
        if (value is Dictionary<object, object> map)
        {
            var name = map.GetValueOrDefault("name")?.ToString();
            var number = map.GetValueOrDefault("port")?.ToString();
            if (!int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                throw new FormatException($"{path}: port \"{number}\" is not a number");
            return new PublishedPort
            {
                Name = name ?? $"p{n}", Port = n, Protocol = map.GetValueOrDefault("protocol")?.ToString() ?? "tcp",
            };
        }
        var text = value.ToString() ?? "";
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var rest = colon < 0 ? text : text[(colon + 1)..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var numberText = slash < 0 ? rest : rest[..slash];
        if (!int.TryParse(numberText, NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            throw new FormatException($"{path}: \"{text}\" is not a port (name:port/protocol)");
        return new PublishedPort
        {
            Name = colon < 0 ? $"p{port}" : text[..colon], Port = port, Protocol = slash < 0 ? "tcp" : rest[(slash + 1)..],
        };
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
            Http = h.HttpPort is null
                ? null
                : new HttpCheck { Port = PortName(h.HttpPort, "http_port"), Path = h.Url ?? "/", ExpectedCode = h.Code },
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
    public List<string> Volumes { get; set; } = [];
    public Dictionary<string, object> Data { get; set; } = [];
    public List<object> Secrets { get; set; } = [];
    public bool? Privileged { get; set; }
    public List<string> CapAdd { get; set; } = [];
    public Dictionary<string, string> Sysctls { get; set; } = [];
    public List<string> Dns { get; set; } = [];
    public List<string> ExtraHosts { get; set; } = [];
    public Dictionary<string, string> Ulimits { get; set; } = [];
    public LogSpec? Log { get; set; }
    public bool? IgnorePull { get; set; }
}

public sealed class LogSpec
{
    public string? Driver { get; set; }
    public Dictionary<string, string> Options { get; set; } = [];
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
    public List<string> AfterCreate { get; set; } = [];
    public List<string> AfterStart { get; set; } = [];
    public List<string> BeforeStop { get; set; } = [];
}
