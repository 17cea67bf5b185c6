using System.Globalization;
using Spectre.Console;

namespace EdgeEru.Cli;

/// <summary>What every eru command reads and prints the same way: tokens, NAME=VALUE pairs, sizes, tables, errors.</summary>
internal static class CliText
{
    /// <summary>
    /// An API token: the one given, else $<paramref name="envVar"/>, else .dev/<paramref name="devFile"/> as
    /// <c>./eru dev</c> writes it; null when there is none.
    /// </summary>
    public static async Task<string?> TokenAsync(string? given, string envVar, string devFile, CancellationToken ct)
    {
        var token = given ?? Environment.GetEnvironmentVariable(envVar);
        var file = Path.Combine(".dev", devFile);
        if (string.IsNullOrEmpty(token) && File.Exists(file)) token = (await File.ReadAllTextAsync(file, ct)).Trim();
        return string.IsNullOrEmpty(token) ? null : token;
    }

    /// <summary>
    /// How code that reads etcd itself (eru logs' path without eru-core, used by the agents' tests) reaches it: the URL, and the
    /// TLS files of $ERU_ETCD_CA, $ERU_ETCD_CERT, $ERU_ETCD_KEY for a cluster run with client certificates.
    /// </summary>
    public static EdgeEru.Registry.RegistryOptions Etcd(string endpoints, string prefix) => new()
    {
        Endpoints = endpoints, Prefix = prefix, RequestTimeout = TimeSpan.FromSeconds(5),
        TlsCa = Environment.GetEnvironmentVariable("ERU_ETCD_CA") ?? "",
        TlsCert = Environment.GetEnvironmentVariable("ERU_ETCD_CERT") ?? "",
        TlsKey = Environment.GetEnvironmentVariable("ERU_ETCD_KEY") ?? "",
    };

    public static async Task<int> Fail(string what, string message, int code)
    {
        await Console.Error.WriteLineAsync($"eru {what}: {message}");
        return code;
    }

    /// <summary>"NAME=VALUE" pairs from a repeatable option; a pair without '=' is an error naming the option.</summary>
    public static Dictionary<string, string> Pairs(IEnumerable<string>? values, string option, bool valueOptional = false)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in values ?? [])
        {
            var eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 && !(valueOptional && eq < 0 && kv.Length > 0)) throw new FormatException($"{option} \"{kv}\" must be NAME=VALUE");
            d[eq < 0 ? kv : kv[..eq]] = eq < 0 ? "" : kv[(eq + 1)..];
        }
        return d;
    }

    /// <summary>Bytes from "512M", "2G", "64k", "1048576" (binary units).</summary>
    public static long Size(string? text, string option)
    {
        if (string.IsNullOrWhiteSpace(text)) return 0;
        var t = text.Trim().TrimEnd('b', 'B').TrimEnd('i');
        var unit = char.ToUpperInvariant(t[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1L };
        var number = unit == 1 ? t : t[..^1];
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n < 0)
            throw new FormatException($"{option} \"{text}\" is not a size (e.g. 512M, 2G)");
        return (long)(n * unit);
    }

    /// <summary>A duration from "45s", "90m", "12h", "30d", "2w" (a bare number is seconds).</summary>
    public static TimeSpan Duration(string text, string option)
    {
        var t = text.Trim();
        var unit = t.Length == 0 ? 0 : char.ToLowerInvariant(t[^1]) switch
        {
            's' => 1, 'm' => 60, 'h' => 3600, 'd' => 86400, 'w' => 7 * 86400, _ => char.IsAsciiDigit(t[^1]) ? 1 : 0,
        };
        var number = unit > 0 && !char.IsAsciiDigit(t[^1]) ? t[..^1] : t;
        if (unit == 0 || !long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0
            || n > TimeSpan.MaxValue.TotalSeconds / unit / 2)
            throw new FormatException($"{option} \"{text}\" is not a duration (e.g. 90m, 12h, 30d)");
        return TimeSpan.FromSeconds(n * unit);
    }

    public static string Bytes(long b) =>
        b >= 1L << 30 ? $"{b / (double)(1L << 30):0.#}G"
        : b >= 1L << 20 ? $"{b / (double)(1L << 20):0.#}M"
        : b >= 1024 ? $"{b / 1024.0:0.#}K"
        : b.ToString(CultureInfo.InvariantCulture);

    /// <summary>A table for humans (Spectre.Console); plain columns when output is not a terminal.</summary>
    public static void Table(string[] header, IEnumerable<string[]> rows)
    {
        var list = rows.ToList();
        if (Console.IsOutputRedirected)
        {
            var widths = header.Select((h, i) => list.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
            Console.WriteLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
            foreach (var r in list) Console.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
            return;
        }
        var table = new Table().Border(TableBorder.Simple);
        foreach (var h in header) table.AddColumn(h);
        foreach (var r in list) table.AddRow(r.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
    }
}
