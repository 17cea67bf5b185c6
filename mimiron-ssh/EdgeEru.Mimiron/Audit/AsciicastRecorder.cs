using System.Diagnostics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EdgeEru.Mimiron.Audit;

/// <summary>
/// A session recording in asciicast v2 (a header line, then <c>[seconds, "o", text]</c> for output and
/// <c>[seconds, "r", "COLSxROWS"]</c> for resizes), replayable with asciinema. Output split inside a UTF-8 sequence
/// is joined before it is written.
/// </summary>
public sealed class AsciicastRecorder : IDisposable
{
    private readonly StreamWriter _file;
    private readonly Decoder _utf8 = new UTF8Encoding(false).GetDecoder();
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly Lock _lock = new();
    private static readonly JsonWriterOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public AsciicastRecorder(string path, uint width, uint height, string? term, string? command, string title)
    {
        Path = path;
        _file = new StreamWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
        Line(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("version", 2);
            w.WriteNumber("width", width == 0 ? 80 : width);
            w.WriteNumber("height", height == 0 ? 24 : height);
            w.WriteNumber("timestamp", DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            if (command is not null) w.WriteString("command", command);
            w.WriteString("title", title);
            w.WriteStartObject("env");
            w.WriteString("TERM", term ?? "");
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    public string Path { get; }

    public void Output(ReadOnlySpan<byte> data)
    {
        var chars = new char[_utf8.GetCharCount(data, flush: false)];
        var n = _utf8.GetChars(data, chars, flush: false);
        if (n > 0) Event("o", new string(chars, 0, n));
    }

    public void Resize(uint columns, uint rows) => Event("r", $"{columns}x{rows}");

    private void Event(string code, string data) => Line(w =>
    {
        w.WriteStartArray();
        w.WriteNumberValue(Math.Round(Stopwatch.GetElapsedTime(_start).TotalSeconds, 6));
        w.WriteStringValue(code);
        w.WriteStringValue(data);
        w.WriteEndArray();
    });

    private void Line(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, Relaxed)) write(w);
        lock (_lock)
        {
            _file.WriteLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
            _file.Flush();
        }
    }

    public void Dispose() => _file.Dispose();
}
