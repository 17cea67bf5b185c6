using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// Per container, Docker's timestamp (Unix nanoseconds) of the last line shipped, kept in a file
/// (<c>Logs:CursorFile</c>) and written every second: a restarted agent asks Docker for the lines after it, so
/// what was written while the agent was down is shipped and nothing twice (a crash repeats at most the last
/// second's lines, those not yet in the file).
/// </summary>
public sealed class LogCursors(string? path, ILogger log)
{
    private readonly ConcurrentDictionary<string, long> _cursors = new(StringComparer.Ordinal);
    private int _dirty;

    public void Load()
    {
        if (path is null || !File.Exists(path)) return;
        try
        {
            foreach (var (id, nanos) in JsonSerializer.Deserialize<Dictionary<string, long>>(File.ReadAllBytes(path)) ?? [])
                _cursors[id] = nanos;
            log.LogInformation("log cursors of {Count} containers read from {Path}", _cursors.Count, path);
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            // Unreadable: start from now on, as without a file; say so.
            log.LogWarning("log cursors in {Path} not read ({Error}): lines written while the agent was down are not shipped",
                path, ex.Message);
        }
    }

    public long? Get(string id) => _cursors.TryGetValue(id, out var nanos) ? nanos : null;

    public void Advance(string id, long nanos)
    {
        _cursors.AddOrUpdate(id, nanos, (_, old) => Math.Max(old, nanos));
        Interlocked.Exchange(ref _dirty, 1);
    }

    public void Forget(string id)
    {
        if (_cursors.TryRemove(id, out _)) Interlocked.Exchange(ref _dirty, 1);
    }

    /// <summary>Writes the file when something changed (a temporary file renamed over it: never half written).</summary>
    public void Save()
    {
        if (path is null || Interlocked.Exchange(ref _dirty, 0) == 0) return;
        try
        {
            var tmp = path + ".tmp";
            File.WriteAllBytes(tmp, JsonSerializer.SerializeToUtf8Bytes(_cursors.ToDictionary(StringComparer.Ordinal)));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Interlocked.Exchange(ref _dirty, 1);
            log.LogWarning("log cursors not written to {Path}: {Error}", path, ex.Message);
        }
    }

    /// <summary>
    /// Splits Docker's timestamp off a line ("2026-12-06T20:45:01.123456789Z text"); false when the line has none.
    /// RFC 3339 with up to nine digits of fraction, as Docker writes them (trailing zeros dropped).
    /// </summary>
    public static bool TrySplit(string line, out long unixNanos, out string text)
    {
        unixNanos = 0;
        text = line;
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        if (space < 20 || line[space - 1] != 'Z') return false;
        var stamp = line.AsSpan(0, space - 1);
        var dot = stamp.IndexOf('.');
        var whole = dot < 0 ? stamp : stamp[..dot];
        if (!DateTime.TryParseExact(whole, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var at)) return false;
        long fraction = 0;
        if (dot >= 0)
        {
            var digits = stamp[(dot + 1)..];
            if (digits.Length is 0 or > 9 || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out fraction))
                return false;
            for (var i = digits.Length; i < 9; i++) fraction *= 10;
        }
        unixNanos = (at.Ticks - DateTime.UnixEpoch.Ticks) * 100 + fraction;
        text = line[(space + 1)..];
        return true;
    }
}
