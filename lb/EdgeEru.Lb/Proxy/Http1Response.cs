using System.Buffers.Text;
using System.Text;

namespace EdgeEru.Lb.Proxy;

/// <summary>How the body of a response from a workload ends.</summary>
internal enum BodyFraming { None, ContentLength, Chunked, UntilClose }

/// <summary>
/// What the forwarder needs from a response head, besides the headers it hands on: its length in bytes, how
/// the body ends, the Content-Length it declared (-1: none), and whether the connection may carry another request.
/// </summary>
internal readonly record struct ResponseHead(int Status, int Length, BodyFraming Framing, long ContentLength, bool KeepAlive);

/// <summary>
/// HTTP/1.1 responses as workloads send them (RFC 9112), parsed strictly: anything that could make the LB
/// and the workload disagree on where a response ends is refused, and the connection is not reused.
/// Pure: bytes in, a head and headers out.
/// </summary>
internal static class Http1Response
{
    /// <summary>Hop-by-hop headers: about this connection, never handed on (RFC 9110 §7.6.1).</summary>
    public static bool IsHopByHop(ReadOnlySpan<byte> name)
    {
        foreach (var hop in HopByHop)
            if (hop.Length == name.Length && Ascii.EqualsIgnoreCase(name, hop)) return true;
        return false;
    }

    private static readonly string[] HopByHop = ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer"];

    /// <summary>Whether <paramref name="name"/> (raw bytes) is one of <paramref name="names"/>, case-insensitively.</summary>
    public static bool Named(IEnumerable<string>? names, ReadOnlySpan<byte> name)
    {
        if (names is null) return false;
        foreach (var n in names)
            if (n.Length == name.Length && Ascii.EqualsIgnoreCase(name, n)) return true;
        return false;
    }

    public static bool IsHopByHop(string name)
    {
        foreach (var hop in HopByHop)
            if (name.Equals(hop, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    /// <summary>
    /// Parses the head at the start of <paramref name="data"/>: false while it is incomplete, an
    /// <see cref="InvalidDataException"/> naming the problem when it is malformed. End-to-end headers go to
    /// <paramref name="headers"/> (hop-by-hop ones and Content-Length are kept back); nothing is added while the head is incomplete.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> data, bool requestWasHead, IHeaderDictionary? headers, out ResponseHead head)
    {
        if (headers is null)
        {
            var none = default(NoHeaders);
            return TryParse(data, requestWasHead, ref none, out head);
        }
        var sink = new DictionaryHeaders(headers);
        return TryParse(data, requestWasHead, ref sink, out head);
    }

    /// <summary>
    /// As above, with the end-to-end headers handed to <paramref name="headers"/> as raw bytes (the HTTP/1.1
    /// lane copies them to the client as they came; Kestrel's way makes strings of them).
    /// </summary>
    public static bool TryParse<TSink>(ReadOnlySpan<byte> data, bool requestWasHead, ref TSink headers, out ResponseHead head)
        where TSink : struct, IHeaderSink
    {
        head = default;
        var end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0) return false;
        var lines = data[..(end + 2)];

        // Status line: HTTP/1.x SP 3DIGIT SP reason
        var eol = lines.IndexOf("\r\n"u8);
        var status = lines[..eol];
        if (status.Length < 12 || !status.StartsWith("HTTP/1."u8) || (status[7] != '1' && status[7] != '0') || status[8] != ' ')
            throw new InvalidDataException($"bad status line \"{Printable(status)}\"");
        var http10 = status[7] == '0';
        if (!Utf8Parser.TryParse(status.Slice(9, 3), out int code, out var used) || used != 3 || code < 100 || code > 999
            || (status.Length > 12 && status[12] != ' '))
            throw new InvalidDataException($"bad status code in \"{Printable(status)}\"");

        long contentLength = -1;
        var chunked = false;
        var otherCoding = false;
        bool closeToken = false, keepAliveToken = false;
        List<string>? connectionTokens = null;
        var rest = lines[(eol + 2)..];
        while (!rest.IsEmpty)
        {
            eol = rest.IndexOf("\r\n"u8);
            var line = rest[..eol];
            rest = rest[(eol + 2)..];
            if (line.IsEmpty) break;
            if (line[0] is (byte)' ' or (byte)'\t') throw new InvalidDataException("obsolete line folding in a header");
            var colon = line.IndexOf((byte)':');
            if (colon <= 0) throw new InvalidDataException($"header line without a name: \"{Printable(line)}\"");
            var rawName = line[..colon];
            if (rawName.IndexOfAnyExcept(TokenChars) >= 0) throw new InvalidDataException($"bad header name \"{Printable(rawName)}\"");
            var rawValue = line[(colon + 1)..].Trim(" \t"u8);
            if (rawValue.IndexOfAny(ControlChars) >= 0) throw new InvalidDataException($"control character in header {Printable(rawName)}");

            if (rawName.Length == 14 && Ascii.EqualsIgnoreCase(rawName, "Content-Length"u8))
            {
                if (!Utf8Parser.TryParse(rawValue, out long n, out var u) || u != rawValue.Length || n < 0)
                    throw new InvalidDataException($"bad Content-Length \"{Printable(rawValue)}\"");
                if (contentLength >= 0 && contentLength != n) throw new InvalidDataException("two different Content-Length values");
                contentLength = n;
                continue;
            }
            if (Ascii.EqualsIgnoreCase(rawName, "Transfer-Encoding"u8))
            {
                // The last coding decides the framing: chunked, or anything else (read until the connection closes).
                var comma = rawValue.LastIndexOf((byte)',');
                var last = (comma < 0 ? rawValue : rawValue[(comma + 1)..]).Trim(" \t"u8);
                chunked = Ascii.EqualsIgnoreCase(last, "chunked"u8);
                otherCoding = !chunked;
                continue;
            }
            if (Ascii.EqualsIgnoreCase(rawName, "Connection"u8))
            {
                foreach (var range in rawValue.Split((byte)','))
                {
                    var token = rawValue[range].Trim(" \t"u8);
                    if (token.IsEmpty) continue;
                    if (Ascii.EqualsIgnoreCase(token, "close"u8)) closeToken = true;
                    else if (Ascii.EqualsIgnoreCase(token, "keep-alive"u8)) keepAliveToken = true;
                    else (connectionTokens ??= []).Add(Encoding.ASCII.GetString(token));
                }
                continue;
            }
            if (IsHopByHop(rawName) || Named(connectionTokens, rawName)) continue;
            headers.Add(rawName, rawValue);
        }

        // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes it unless told to keep it.
        var close = closeToken || (http10 && !keepAliveToken);
        var framing = BodyFraming.None;
        var noBody = requestWasHead || code is < 200 or 204 or 304;
        if (!noBody)
        {
            if (chunked) framing = BodyFraming.Chunked;
            else if (otherCoding) framing = BodyFraming.UntilClose;
            else if (contentLength >= 0) framing = BodyFraming.ContentLength;
            else framing = BodyFraming.UntilClose;
        }
        // A response with both Transfer-Encoding and Content-Length may be an attack on a cache or proxy: answer it, then close.
        if ((chunked || otherCoding) && contentLength >= 0) close = true;
        if (framing == BodyFraming.UntilClose) close = true;
        head = new ResponseHead(code, end + 4, framing, contentLength, !close);
        return true;
    }

    /// <summary>
    /// Room to read more into a buffer whose unread bytes are <c>buffer[start..end]</c>: when it is full, those move
    /// to its front; false when they fill all of it (a head or framing line larger than the buffer).
    /// </summary>
    public static bool MakeRoom(byte[] buffer, ref int start, ref int end)
    {
        if (end < buffer.Length) return true;
        if (start == 0) return false;
        Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
        end -= start;
        start = 0;
        return true;
    }

    /// <summary>tchar of RFC 9110 §5.6.2.</summary>
    private static readonly System.Buffers.SearchValues<byte> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Bytes a field value must not hold (CTLs but tab, and DEL).</summary>
    private static readonly System.Buffers.SearchValues<byte> ControlChars = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 32).Where(c => c != '\t').Select(c => (byte)c), (byte)0x7f]);

    private static readonly string[] Common =
    [
        "Content-Type", "Date", "Server", "Cache-Control", "ETag", "Last-Modified", "Expires", "Location", "Set-Cookie", "Vary",
        "Content-Encoding", "Accept-Ranges", "Connection", "Keep-Alive", "Transfer-Encoding", "Access-Control-Allow-Origin",
        "Content-Language", "Content-Disposition", "Strict-Transport-Security", "X-Content-Type-Options", "Age", "Pragma",
    ];

    /// <summary>The name as a string, without allocating for the common ones.</summary>
    internal static string HeaderName(ReadOnlySpan<byte> raw)
    {
        foreach (var known in Common)
            if (known.Length == raw.Length && Ascii.EqualsIgnoreCase(raw, known)) return known;
        return Encoding.ASCII.GetString(raw);
    }

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var s = Encoding.Latin1.GetString(bytes[..Math.Min(bytes.Length, 80)]);
        return string.Concat(s.Select(c => c is >= ' ' and < (char)0x7f ? c : '?'));
    }
}

/// <summary>Where a parsed response's end-to-end headers go.</summary>
internal interface IHeaderSink
{
    void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>Headers dropped (an interim response's).</summary>
internal struct NoHeaders : IHeaderSink
{
    public readonly void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) { }
}

/// <summary>Headers into Kestrel's response, as strings (cached: the same values come on every response).</summary>
internal readonly struct DictionaryHeaders(IHeaderDictionary headers) : IHeaderSink
{
    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var n = Http1Response.HeaderName(name);
        headers.Append(n, ValueCache.Get(n, value));
    }
}

/// <summary>
/// The last value seen per header name, per thread: a workload sends the same Server, Content-Type and (for
/// a second) Date on every response, so those strings are made once instead of per response.
/// </summary>
internal static class ValueCache
{
    private const int Slots = 16, MaxLength = 96;

    [ThreadStatic] private static Entry[]? _entries;

    private sealed class Entry
    {
        public string? Name;
        public byte[] Raw = new byte[MaxLength];
        public int Length;
        public string Value = "";
    }

    public static string Get(string name, ReadOnlySpan<byte> raw)
    {
        if (raw.Length > MaxLength) return Encoding.Latin1.GetString(raw);
        var entries = _entries ??= Enumerable.Range(0, Slots).Select(_ => new Entry()).ToArray();
        var e = entries[(name.Length * 7 + (name[0] | 0x20)) % Slots];
        if (string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase) && raw.SequenceEqual(e.Raw.AsSpan(0, e.Length))) return e.Value;
        var value = Encoding.Latin1.GetString(raw);
        e.Name = name;
        raw.CopyTo(e.Raw);
        e.Length = raw.Length;
        e.Value = value;
        return value;
    }
}

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
