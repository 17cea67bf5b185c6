using System.Buffers.Text;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// Decodes a chunked body (RFC 9112 §7.1) incrementally: given buffered bytes, says how many are framing
/// and how many are data to hand on, until the last chunk and its trailers.
/// </summary>
internal struct ChunkedDecoder
{
    private enum State { Size, Data, DataEnd, Trailers, Done }
    private State _state;
    private long _remaining;

    public readonly bool Done => _state == State.Done;

    /// <summary>
    /// Looks at <paramref name="input"/>: returns bytes consumed; <paramref name="dataStart"/>/<paramref name="dataLength"/>
    /// mark body data inside what was consumed (at most one run per call). 0 consumed means more input is needed.
    /// </summary>
    public int Step(ReadOnlySpan<byte> input, out int dataStart, out int dataLength)
    {
        dataStart = 0;
        dataLength = 0;
        switch (_state)
        {
            case State.Size:
            {
                var eol = input.IndexOf("\r\n"u8);
                if (eol < 0)
                {
                    if (input.Length > 1024) throw new InvalidDataException("chunk size line longer than 1 KB");
                    return 0;
                }
                var line = input[..eol];
                var semi = line.IndexOf((byte)';'); // chunk extensions are ignored
                var hex = (semi >= 0 ? line[..semi] : line).TrimEnd(" \t"u8);
                if (hex.IsEmpty || hex.Length > 15 || !Utf8Parser.TryParse(hex, out long size, out var used, 'X') || used != hex.Length)
                    throw new InvalidDataException("bad chunk size");
                _remaining = size;
                _state = size == 0 ? State.Trailers : State.Data;
                return eol + 2;
            }
            case State.Data:
            {
                if (input.IsEmpty) return 0;
                var n = (int)Math.Min(_remaining, input.Length);
                _remaining -= n;
                if (_remaining == 0) _state = State.DataEnd;
                dataLength = n;
                return n;
            }
            case State.DataEnd:
                if (input.Length < 2) return 0;
                if (input[0] != '\r' || input[1] != '\n') throw new InvalidDataException("chunk data not followed by CRLF");
                _state = State.Size;
                return 2;
            case State.Trailers:
            {
                // Trailer fields are dropped (the response head is gone already); the empty line ends the body.
                var eol = input.IndexOf("\r\n"u8);
                if (eol < 0)
                {
                    if (input.Length > 8192) throw new InvalidDataException("trailer line longer than 8 KB");
                    return 0;
                }
                if (eol == 0) _state = State.Done;
                return eol + 2;
            }
            default:
                return 0;
        }
    }
}
