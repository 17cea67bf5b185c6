using System.Net;
using EdgeEru.Registry.Model;

namespace EdgeEru.Agent.Logs;

/// <summary>The "Logs" section: how lines are cut, how much is kept for tails, and where they go.</summary>
public sealed class LogsOptions
{
    public const string Section = "Logs";

    /// <summary>A longer line is split into records of at most this many bytes.</summary>
    public int MaxLineBytes { get; set; } = 16 * 1024;

    /// <summary>Lines kept per container for the stream API's tail.</summary>
    public int Tail { get; set; } = 1000;

    /// <summary>Lines a stream API client may fall behind before its lines are dropped.</summary>
    public int FollowerBuffer { get; set; } = 10_000;

    public List<LogSinkOptions> Sinks { get; set; } = [];

    /// <summary>
    /// Where the agent keeps, per container, the timestamp of the last line it shipped, so that after a restart it
    /// ships what was written meanwhile (none: it starts from its own start, as without logs history).
    /// </summary>
    public string? CursorFile { get; set; }

    public IReadOnlyList<string> Problems()
    {
        var e = new List<string>();
        if (MaxLineBytes is < 64 or > 1 << 20) e.Add($"Logs:MaxLineBytes {MaxLineBytes} must be between 64 and 1048576");
        if (Tail is < 0 or > 100_000) e.Add($"Logs:Tail {Tail} must be between 0 and 100000");
        if (FollowerBuffer is < 1 or > 1_000_000) e.Add($"Logs:FollowerBuffer {FollowerBuffer} must be between 1 and 1000000");
        for (var i = 0; i < Sinks.Count; i++) e.AddRange(Sinks[i].Problems($"Logs:Sinks:{i}"));
        var names = Sinks.Select((s, i) => s.DisplayName(i)).ToList();
        foreach (var dup in names.GroupBy(n => n).Where(g => g.Count() > 1)) e.Add($"Logs:Sinks: two sinks are named {dup.Key}");
        return e;
    }
}

public sealed class LogSinkOptions
{
    public static readonly string[] Types = ["stdout", "file", "tcp", "udp", "syslog-udp", "syslog-tcp"];

    /// <summary>Names the sink in metrics and logs; defaults to type and address.</summary>
    public string? Name { get; set; }

    /// <summary>stdout, file, tcp / udp (JSON lines), syslog-udp / syslog-tcp (RFC 5424).</summary>
    public string Type { get; set; } = "";

    /// <summary>host:port of tcp, udp and syslog sinks.</summary>
    public string? Address { get; set; }

    /// <summary>The file sink's path; rotated to path.1 ... path.{Keep} past <see cref="MaxBytes"/>.</summary>
    public string? Path { get; set; }
    public long MaxBytes { get; set; } = 100L << 20;
    public int Keep { get; set; } = 5;

    /// <summary>Lines waiting while the sink is slow or down; past this they are dropped and counted.</summary>
    public int Buffer { get; set; } = 10_000;

    /// <summary>Only these apps' lines (all when empty).</summary>
    public List<string> Apps { get; set; } = [];

    /// <summary>Syslog facility (1 user, 16-23 local0-local7).</summary>
    public int Facility { get; set; } = 1;

    public string DisplayName(int index) =>
        Name ?? (Type is "stdout" ? "stdout" : Type == "file" ? $"file:{Path}" : $"{Type}:{Address}") ?? $"sink{index}";

    public IReadOnlyList<string> Problems(string at)
    {
        var e = new List<string>();
        if (!Types.Contains(Type)) e.Add($"{at}:Type \"{Type}\" must be one of {string.Join(", ", Types)}");
        if (Type is "tcp" or "udp" or "syslog-udp" or "syslog-tcp" && ParseAddress(Address) is null)
            e.Add($"{at}:Address \"{Address}\" must be host:port");
        if (Type == "file" && string.IsNullOrWhiteSpace(Path)) e.Add($"{at}:Path is required for a file sink");
        if (Type == "file" && MaxBytes < 4096) e.Add($"{at}:MaxBytes {MaxBytes} must be at least 4096");
        if (Type == "file" && Keep is < 1 or > 100) e.Add($"{at}:Keep {Keep} must be between 1 and 100");
        if (Buffer is < 1 or > 10_000_000) e.Add($"{at}:Buffer {Buffer} must be between 1 and 10000000");
        if (Facility is < 0 or > 23) e.Add($"{at}:Facility {Facility} must be between 0 and 23");
        foreach (var app in Apps.Where(a => !Names.IsLabel(a))) e.Add($"{at}:Apps: \"{app}\" is not an app name");
        return e;
    }

    /// <summary>host:port (an IPv6 address in brackets) → endpoint, or null.</summary>
    public static EndPoint? ParseAddress(string? address)
    {
        if (string.IsNullOrWhiteSpace(address)) return null;
        if (IPEndPoint.TryParse(address, out var ip) && ip.Port > 0) return ip;
        var colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address[(colon + 1)..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535) return null;
        var host = address[..colon];
        return Uri.CheckHostName(host) == UriHostNameType.Dns ? new DnsEndPoint(host, port) : null;
    }
}
