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
    private readonly StreamWriter? _file;
    private readonly ILogger _log;
    private readonly Lock _lock = new();

    public AuditLog(GatewayOptions options, ILoggerFactory logs)
    {
        _log = logs.CreateLogger("EdgeEru.Mimiron.Audit");
        if (options.AuditLog.Length > 0)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(options.AuditLog));
            if (dir is not null) Directory.CreateDirectory(dir);
            _file = new StreamWriter(new FileStream(options.AuditLog, FileMode.Append, FileAccess.Write, FileShare.Read),
                new UTF8Encoding(false));
        }
    }

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
        var line = Encoding.UTF8.GetString(buffer.WrittenSpan);
        if (_file is null)
        {
            _log.LogInformation("{Audit}", line);
            return;
        }
        lock (_lock)
        {
            _file.WriteLine(line);
            _file.Flush();
        }
    }

    public void Dispose() => _file?.Dispose();
}
