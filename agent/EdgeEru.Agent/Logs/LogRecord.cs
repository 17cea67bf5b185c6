using System.Buffers;
using System.Text.Json;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// One line of a container's output: <c>{app, entrypoint, ident, node, stream, time, line}</c> as a JSON
/// object (the wire form every JSON sink and the stream API carry). <see cref="Seq"/> orders lines of the
/// agent; <see cref="ContainerId"/> is for filtering, not sent.
/// </summary>
public sealed class LogRecord
{
    private byte[]? _json;

    public required string ContainerId { get; init; }
    public required string App { get; init; }
    public required string Entrypoint { get; init; }
    public required string Ident { get; init; }
    public required string Node { get; init; }

    /// <summary>stdout or stderr.</summary>
    public required string Stream { get; init; }
    public required DateTimeOffset Time { get; init; }
    public required string Line { get; init; }
    public long Seq { get; init; }

    /// <summary>The record as one line of JSON, without the newline (built once, shared by every sink).</summary>
    public ReadOnlyMemory<byte> Json => _json ??= Encode();

    private byte[] Encode()
    {
        var buffer = new ArrayBufferWriter<byte>(Line.Length + 160);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("app", App);
            w.WriteString("entrypoint", Entrypoint);
            w.WriteString("ident", Ident);
            w.WriteString("node", Node);
            w.WriteString("stream", Stream);
            w.WriteString("time", Time.UtcDateTime);
            w.WriteString("line", Line);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
