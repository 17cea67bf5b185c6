using EdgeEru.Hosting;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EdgeEru.Core.Server;

/// <summary>One audited call: who (a token's name), what (method, apps, target), when, and how it ended.</summary>
public sealed record AuditEntry(
    DateTimeOffset Time, string Who, string Method, IReadOnlyList<string> Apps, string Target, string Outcome, string? Error,
    string Peer, double Milliseconds)
{
    /// <summary>The entry as one JSON line (pure; fields without a value are left out).</summary>
    public string ToJson()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("time", Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("who", Who);
            w.WriteString("method", Method);
            if (Apps.Count > 0)
            {
                w.WriteStartArray("apps");
                foreach (var a in Apps) w.WriteStringValue(a);
                w.WriteEndArray();
            }
            if (Target.Length > 0) w.WriteString("target", Target);
            w.WriteString("outcome", Outcome);
            if (Error is { Length: > 0 }) w.WriteString("error", Error);
            w.WriteString("peer", Peer);
            w.WriteNumber("ms", Math.Round(Milliseconds, 1));
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

/// <summary>
/// Core's audit log: a JSON line per audited call, appended to <c>Core:AuditLog</c> (flushed per line, so a crash
/// loses none that was written) or, without a path, to the log (category EdgeEru.Core.Audit).
/// </summary>
public sealed class AuditLog(string? path, ILoggerFactory logs) : IDisposable
{
    private readonly JsonLinesLog _lines = new(path, "Core:AuditLog", logs.CreateLogger("EdgeEru.Core.Audit"));

    public void Write(AuditEntry entry) => _lines.Write(entry.ToJson());

    public void Dispose() => _lines.Dispose();
}
