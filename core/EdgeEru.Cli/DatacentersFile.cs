using System.Text.Json;
using System.Text.Json.Serialization;

namespace EdgeEru.Cli;

/// <summary>
/// Where the CLI finds each datacenter's eru-core (<c>eru --dc NAME</c>, <c>eru ps --all-dcs</c>): a JSON file,
/// <c>$ERU_DATACENTERS</c>, else <c>~/.config/eru/datacenters.json</c>. Each datacenter has its own Core and its own tokens,
/// so an entry holds its API URLs (replicas comma-separated), its token (or a file holding it) and its CA:
/// <code>{"datacenters":[{"name":"dc1","core":"https://core.dc1:5001","token_file":"~/.eru/dc1.token"}]}</code>
/// </summary>
internal sealed class DatacentersFile
{
    public List<Entry> Datacenters { get; set; } = [];

    internal sealed class Entry
    {
        public string Name { get; set; } = "";
        public string Core { get; set; } = "";
        public string? Token { get; set; }
        [JsonPropertyName("token_file")] public string? TokenFile { get; set; }
        public string? Ca { get; set; }
    }

    public static string PathOf() => Environment.GetEnvironmentVariable("ERU_DATACENTERS") is { Length: > 0 } path
        ? path
        : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "eru", "datacenters.json");

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>The file's datacenters in their order, or why it cannot be used (the file named).</summary>
    public static (IReadOnlyList<Entry> Datacenters, string? Problem) Load()
    {
        var path = PathOf();
        if (!File.Exists(path)) return ([], $"no datacenters file at {path} (set ERU_DATACENTERS, or write it: docs/multi-dc.md)");
        DatacentersFile? file;
        try
        {
            file = JsonSerializer.Deserialize<DatacentersFile>(File.ReadAllText(path), Json);
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            return ([], $"{path}: {ex.Message}");
        }
        var entries = file?.Datacenters ?? [];
        var problems = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            if (!Registry.Model.Names.IsLabel(e.Name)) problems.Add($"datacenter name \"{e.Name}\" must be a DNS label");
            else if (!seen.Add(e.Name)) problems.Add($"datacenter {e.Name} is listed twice");
            if (e.Core.Length == 0) problems.Add($"datacenter {e.Name}: core (its eru-core URL) is missing");
            if (e.Token is not null && e.TokenFile is not null) problems.Add($"datacenter {e.Name}: token or token_file, not both");
        }
        if (entries.Count == 0) problems.Add("it lists no datacenter");
        return problems.Count > 0 ? ([], $"{path}: {string.Join("; ", problems)}") : (entries, null);
    }

    /// <summary>The entry's token: given inline, or read from its file (~ is the home directory).</summary>
    public static async Task<string?> TokenAsync(Entry e, CancellationToken ct)
    {
        if (e.Token is { Length: > 0 } token) return token;
        if (e.TokenFile is not { Length: > 0 } file) return null;
        if (file.StartsWith("~/", StringComparison.Ordinal))
            file = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), file[2..]);
        return (await File.ReadAllTextAsync(file, ct)).Trim();
    }
}
