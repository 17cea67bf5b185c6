using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Text;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// HTTP/1.1 responses as workloads send them (RFC 9112), parsed strictly: anything that could make the LB
/// and the workload disagree on where a response ends is refused, and the connection is not reused.
/// Pure: bytes in, a head and headers out.
/// </summary>
internal static class ResponseParser
{
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
    /// As above, with the status and then the end-to-end headers handed to <paramref name="headers"/> as raw bytes
    /// (the fast path copies them to the client as they came; Kestrel's way makes strings of them), only once the
    /// head is complete.
    /// </summary>
    public static bool TryParse<TSink>(ReadOnlySpan<byte> data, bool requestWasHead, ref TSink headers, out ResponseHead head)
        where TSink : struct, IResponseHeadSink
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
        headers.Status(code);

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
                // 1*DIGIT and nothing else (RFC 9110 §8.6): Utf8Parser alone takes a sign, so "+5" and "-0" would pass.
                if (!IsDigits(rawValue) || !Utf8Parser.TryParse(rawValue, out long n, out var u) || u != rawValue.Length)
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
            if (FieldNames.IsHopByHop(rawName) || FieldNames.IsOneOf(CollectionsMarshal.AsSpan(connectionTokens), rawName)) continue;
            headers.Header(rawName, rawValue);
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

    /// <summary>One or more ASCII digits, nothing else.</summary>
    public static bool IsDigits(ReadOnlySpan<byte> value) => !value.IsEmpty && value.IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0;

    /// <summary>tchar of RFC 9110 §5.6.2.</summary>
    private static readonly System.Buffers.SearchValues<byte> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Bytes a field value must not hold (CTLs but tab, and DEL).</summary>
    private static readonly System.Buffers.SearchValues<byte> ControlChars = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 32).Where(c => c != '\t').Select(c => (byte)c), (byte)0x7f]);

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var s = Encoding.Latin1.GetString(bytes[..Math.Min(bytes.Length, 80)]);
        return string.Concat(s.Select(c => c is >= ' ' and < (char)0x7f ? c : '?'));
    }
}
