using EdgeEru.Hosting;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EdgeEru.Mimiron.Audit;

/// <summary>
/// One JSON line per security-relevant event (login accepted/refused, session start/end), appended to a file
/// (flushed per line) or, without one, written to the log. Fields with null values are left out.
/// </summary>
public sealed class AuditLog : IDisposable
{
    private readonly JsonLinesLog _lines;

    public AuditLog(GatewayOptions options, ILoggerFactory logs) =>
        _lines = new JsonLinesLog(options.AuditLog, "Ssh:AuditLog", logs.CreateLogger("EdgeEru.Mimiron.Audit"));

    public void Write(string @event, params (string Key, object? Value)[] fields)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("time",
                DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("event", @event);
            foreach (var (k, v) in fields)
            {
                switch (v)
                {
                    case null: break;
                    case int i: w.WriteNumber(k, i); break;
                    case long l: w.WriteNumber(k, l); break;
                    case double d: w.WriteNumber(k, Math.Round(d, 3)); break;
                    case bool b: w.WriteBoolean(k, b); break;
                    default: w.WriteString(k, v.ToString()); break;
                }
            }
            w.WriteEndObject();
        }
        _lines.Write(Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    public void Dispose() => _lines.Dispose();
}
