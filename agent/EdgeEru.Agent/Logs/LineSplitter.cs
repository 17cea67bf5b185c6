using System.Buffers;
using System.Text;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// Turns one output stream's bytes into lines: split at '\n' (a '\r' before it dropped), a line longer
/// than <c>maxLineBytes</c> cut into pieces at character boundaries, and bytes that are not UTF-8
/// written as <c>\xNN</c>. Pure; one per stream of a container.
/// </summary>
public sealed class LineSplitter(int maxLineBytes)
{
    // Grows up to the bound as long lines come: one splitter per stream of every container, most lines are short.
    private readonly int _max = Math.Max(4, maxLineBytes);
    private byte[] _pending = new byte[Math.Min(256, Math.Max(4, maxLineBytes))];
    private int _length;

    private bool _continues;

    /// <summary>Feeds bytes; <paramref name="onLine"/> gets each complete (or overlong) line.</summary>
    public void Feed(ReadOnlySpan<byte> data, Action<string> onLine) => Feed(data, (line, _) => onLine(line));

    /// <summary>As above; the flag says whether the piece starts a line (false: it continues an overlong one).</summary>
    public void Feed(ReadOnlySpan<byte> data, Action<string, bool> onLine)
    {
        while (data.Length > 0)
        {
            var nl = data.IndexOf((byte)'\n');
            var take = nl < 0 ? data.Length : nl;
            if (take > _pending.Length - _length && _pending.Length < _max)
                Array.Resize(ref _pending, Math.Min(_max, Math.Max(_pending.Length * 2, _length + take)));
            var room = _pending.Length - _length;
            if (take > room)
            {
                // Overlong: fill the buffer, emit it up to the last whole character, keep the rest.
                data[..room].CopyTo(_pending.AsSpan(_length));
                _length += room;
                data = data[room..];
                var cut = CharBoundary(_pending.AsSpan(0, _length));
                onLine(Decode(_pending.AsSpan(0, cut)), !_continues);
                _continues = true;
                _pending.AsSpan(cut, _length - cut).CopyTo(_pending);
                _length -= cut;
                continue;
            }
            data[..take].CopyTo(_pending.AsSpan(_length));
            _length += take;
            if (nl < 0) return;
            var line = _pending.AsSpan(0, _length);
            if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
            onLine(Decode(line), !_continues);
            _continues = false;
            _length = 0;
            data = data[(nl + 1)..];
        }
    }

    /// <summary>The stream ended: a last line without '\n' is still a line.</summary>
    public void Flush(Action<string> onLine) => Flush((line, _) => onLine(line));

    public void Flush(Action<string, bool> onLine)
    {
        if (_length == 0) return;
        onLine(Decode(_pending.AsSpan(0, _length)), !_continues);
        _continues = false;
        _length = 0;
    }

    /// <summary>Where to cut a full buffer so that no UTF-8 sequence is split (the whole buffer if its end is not inside one).</summary>
    internal static int CharBoundary(ReadOnlySpan<byte> buffer)
    {
        // Look back at most 3 bytes for the lead byte of a sequence that runs past the end.
        for (var back = 1; back <= Math.Min(3, buffer.Length - 1); back++)
        {
            var b = buffer[^back];
            if ((b & 0xC0) == 0x80) continue; // continuation byte: keep looking
            var need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return need > back ? buffer.Length - back : buffer.Length;
        }
        return buffer.Length;
    }

    /// <summary>UTF-8 to text; every byte of an invalid sequence becomes the four characters <c>\xNN</c>.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return Encoding.UTF8.GetString(bytes);
        var sb = new StringBuilder(bytes.Length + 16);
        while (bytes.Length > 0)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes, out var rune, out var consumed);
            if (status == OperationStatus.Done) sb.Append(rune.ToString());
            else
                foreach (var b in bytes[..Math.Max(1, consumed)])
                    sb.Append("\\x").Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            bytes = bytes[Math.Max(1, consumed)..];
        }
        return sb.ToString();
    }
}
