using System.Buffers;
using System.Net;
using System.Text;
using EdgeEru.Lb.Forwarding;
using EdgeEru.Lb.Routing;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace EdgeEru.Lb.FastPath;

/// <summary>What the fast path makes of the bytes a connection has sent so far.</summary>
internal enum HeadStatus { Incomplete, Complete, ForKestrel }

/// <summary>
/// A request head the HTTP/1.1 fast path answers itself: GET or HEAD, HTTP/1.1, an origin-form target without
/// percent-escapes or dot segments, one Host, no body, no upgrade, printable ASCII only. The fast path recognises
/// that plain case and nothing else: whatever does not fit (bodies, HTTP/1.0 or 2, odd bytes, big heads) is
/// left to Kestrel, byte for byte, so the fast path never has to be as complete as Kestrel, only as strict.
/// Pure: parsing reads the buffer it is given; the facts the rule graph asks for are made on demand.
/// One per connection, reused for each request on it.
/// </summary>
internal sealed class FastPathRequest : IRequestFacts
{
    /// <summary>A head must be complete within this many bytes (Kestrel answers bigger ones).</summary>
    public const int MaxHead = 16 * 1024;
    private const int MaxHeaders = 64;

    private byte[] _buffer = [];
    private int _base;
    private readonly Range[] _names = new Range[MaxHeaders], _values = new Range[MaxHeaders];
    private string? _path, _target;
    private readonly byte[] _pathBytes = new byte[64];
    private int _pathLength;
    private Dictionary<string, StringValues>? _query;
    private bool _queryParsed;
    private IRequestCookieCollection? _cookies;

    public HeadLimits Limits { get; init; } = HeadLimits.KestrelDefaults;

    /// <summary>The peer's address (the TCP connection's), fixed for the connection.</summary>
    public IPAddress Peer { get; init; } = IPAddress.None;
    public string PeerText { get; init; } = "";

    public int Length { get; private set; }
    public bool IsHead { get; private set; }
    /// <summary>The client asked for the connection to be closed after this response.</summary>
    public bool Close { get; private set; }
    public int HeaderCount { get; private set; }
    public Range TargetRange { get; private set; }
    public Range QueryRange { get; private set; } // with its '?'; empty when none
    public Range HostRange { get; private set; }
    private int _cookieHeaders;

    public ReadOnlySpan<byte> Bytes(Range r) => _buffer.AsSpan(_base..)[r];
    public ReadOnlySpan<byte> Name(int i) => Bytes(_names[i]);
    public ReadOnlySpan<byte> Value(int i) => Bytes(_values[i]);

    /// <summary>Host as Kestrel's Request.Host.Host gives it: without the port (made once while a connection sends the same).</summary>
    public string Host()
    {
        var host = Bytes(HostRange);
        var colon = host.IndexOf((byte)':');
        if (colon >= 0) host = host[..colon];
        if (_host is not null && host.SequenceEqual(_hostBytes)) return _host;
        _hostBytes = host.ToArray();
        return _host = Encoding.ASCII.GetString(host);
    }

    private string? _host;
    private byte[] _hostBytes = [];

    /// <summary>The target as the client sent it (for the access log).</summary>
    public string Target => _target ??= Encoding.ASCII.GetString(Bytes(TargetRange));

    /// <summary>
    /// Looks at <c>buffer[start..end]</c>; on Complete, the head is <see cref="Length"/> bytes from <paramref name="start"/>.
    /// </summary>
    public HeadStatus Parse(byte[] buffer, int start, int end)
    {
        _buffer = buffer;
        _base = start;
        var data = buffer.AsSpan(start, end - start);
        // The method first: anything else (a body, HTTP/2's preface, TLS on a plain port) goes to Kestrel at once.
        var isHead = data.Length > 0 && data[0] == 'H';
        var method = isHead ? "HEAD "u8 : "GET "u8;
        var prefix = Math.Min(data.Length, method.Length);
        if (!data[..prefix].SequenceEqual(method[..prefix])) return HeadStatus.ForKestrel;
        var endOfHead = data.IndexOf("\r\n\r\n"u8);
        if (endOfHead < 0)
        {
            // A bare LF (which Kestrel may take as a line end) would keep this waiting for a CRLF CRLF that never comes.
            if (data.Length >= MaxHead || HasBareLineFeed(data)) return HeadStatus.ForKestrel;
            return HeadStatus.Incomplete;
        }
        if (endOfHead + 4 > MaxHead) return HeadStatus.ForKestrel;
        var head = data[..(endOfHead + 2)]; // each line with its CRLF

        // Request line: method SP origin-form SP HTTP/1.1
        var eol = head.IndexOf("\r\n"u8);
        var line = head[..eol];
        if (eol + 2 > Limits.RequestLine || head.Length - eol - 2 > Limits.Headers) return HeadStatus.ForKestrel;
        var afterMethod = method.Length;
        var space = line[afterMethod..].IndexOf((byte)' ');
        if (space <= 0 || !line[(afterMethod + space + 1)..].SequenceEqual("HTTP/1.1"u8)) return HeadStatus.ForKestrel;
        var target = line.Slice(afterMethod, space);
        if (target[0] != '/' || target.IndexOfAnyExcept(TargetChars) >= 0) return HeadStatus.ForKestrel;
        var q = target.IndexOf((byte)'?');
        var path = q < 0 ? target : target[..q];
        // Kestrel decodes escapes and removes dot segments from the path: such paths are Kestrel's.
        if (path.IndexOf((byte)'%') >= 0 || path.IndexOf("/."u8) >= 0) return HeadStatus.ForKestrel;
        TargetRange = new Range(afterMethod, afterMethod + space);
        QueryRange = q < 0 ? new Range(afterMethod + space, afterMethod + space) : new Range(afterMethod + q, afterMethod + space);

        // Header lines: token ":" OWS value OWS, values of visible ASCII, space and tab.
        var count = 0;
        var hosts = 0;
        var cookies = 0;
        var close = false;
        var offset = eol + 2;
        while (offset < head.Length)
        {
            var rest = head[offset..];
            eol = rest.IndexOf("\r\n"u8);
            line = rest[..eol];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || count == MaxHeaders || count == Limits.HeaderCount || line[..colon].IndexOfAnyExcept(TokenChars) >= 0)
                return HeadStatus.ForKestrel;
            var value = line[(colon + 1)..];
            if (value.IndexOfAnyExcept(FieldChars) >= 0) return HeadStatus.ForKestrel;
            var lead = value.Length - value.TrimStart(" \t"u8).Length;
            var trimmed = value.Trim(" \t"u8);
            var name = line[..colon];
            _names[count] = new Range(offset, offset + colon);
            _values[count] = new Range(offset + colon + 1 + lead, offset + colon + 1 + lead + trimmed.Length);
            count++;
            offset += eol + 2;
            switch (name.Length)
            {
                case 4 when Ascii.EqualsIgnoreCase(name, "Host"u8):
                    if (++hosts > 1 || trimmed.IsEmpty || !IsHostValue(trimmed)) return HeadStatus.ForKestrel;
                    HostRange = _values[count - 1];
                    break;
                case 6 when Ascii.EqualsIgnoreCase(name, "Cookie"u8):
                    cookies++;
                    break;
                case 10 when Ascii.EqualsIgnoreCase(name, "Connection"u8):
                    foreach (var r in trimmed.Split((byte)','))
                    {
                        var token = trimmed[r].Trim(" \t"u8);
                        if (Ascii.EqualsIgnoreCase(token, "close"u8)) close = true;
                        else if (!token.IsEmpty && !Ascii.EqualsIgnoreCase(token, "keep-alive"u8))
                            return HeadStatus.ForKestrel; // names more hop-by-hop headers
                    }
                    break;
                default:
                    if (IsKestrels(name)) return HeadStatus.ForKestrel;
                    break;
            }
        }
        if (hosts != 1) return HeadStatus.ForKestrel;

        Length = endOfHead + 4;
        IsHead = isHead;
        Close = close;
        HeaderCount = count;
        _cookieHeaders = cookies;
        _target = null;
        _query = null;
        _queryParsed = false;
        _cookies = null;
        SetPath(path);
        return HeadStatus.Complete;
    }

    private static bool HasBareLineFeed(ReadOnlySpan<byte> data)
    {
        var i = data.IndexOf((byte)'\n');
        while (i >= 0)
        {
            if (i == 0 || data[i - 1] != '\r') return true;
            data = data[(i + 1)..];
            i = data.IndexOf((byte)'\n');
        }
        return false;
    }

    // A keep-alive connection sends the same path again and again: its string is made once.
    private void SetPath(ReadOnlySpan<byte> path)
    {
        if (_path is not null && _pathLength >= 0 && path.SequenceEqual(_pathBytes.AsSpan(0, _pathLength))) return;
        if (path.Length <= _pathBytes.Length)
        {
            path.CopyTo(_pathBytes);
            _pathLength = path.Length;
        }
        else _pathLength = -1;
        _path = Encoding.ASCII.GetString(path);
    }

    /// <summary>Headers that mean a body, an upgrade or an expectation: Kestrel's to handle.</summary>
    private static bool IsKestrels(ReadOnlySpan<byte> name) =>
        Ascii.EqualsIgnoreCase(name, "Content-Length"u8) || Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8)
        || Ascii.EqualsIgnoreCase(name, "Upgrade"u8) || Ascii.EqualsIgnoreCase(name, "Expect"u8)
        || Ascii.EqualsIgnoreCase(name, "HTTP2-Settings"u8);

    /// <summary>reg-name or IPv4 with an optional port (IPv6 literals are Kestrel's).</summary>
    private static bool IsHostValue(ReadOnlySpan<byte> host)
    {
        var colon = host.IndexOf((byte)':');
        var name = colon < 0 ? host : host[..colon];
        if (name.IsEmpty || name.IndexOfAnyExcept(HostChars) >= 0) return false;
        if (colon < 0) return true;
        var port = host[(colon + 1)..];
        return port.Length is > 0 and <= 5 && port.IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0
            && System.Buffers.Text.Utf8Parser.TryParse(port, out int p, out _) && p <= 65535; // as Kestrel checks it
    }

    // IRequestFacts: the same answers HttpRequestFacts gives for this request through Kestrel.
    public string Method => IsHead ? HttpMethods.Head : HttpMethods.Get;
    public string Path => _path!;

    public string? Header(string name)
    {
        string? one = null;
        List<string>? more = null;
        for (var i = 0; i < HeaderCount; i++)
        {
            if (!Ascii.EqualsIgnoreCase(Name(i), name)) continue;
            var v = Encoding.ASCII.GetString(Value(i));
            if (one is null) one = v;
            else (more ??= [one]).Add(v);
        }
        return more is null ? one : string.Join(',', more);
    }

    public string? Query(string name)
    {
        if (!_queryParsed)
        {
            var q = Bytes(QueryRange);
            _query = q.IsEmpty ? null : QueryHelpers.ParseNullableQuery(Encoding.ASCII.GetString(q));
            _queryParsed = true;
        }
        return _query is not null && _query.TryGetValue(name, out var v) ? v.ToString() : null;
    }

    public string? Cookie(string name)
    {
        if (_cookieHeaders == 0) return null;
        if (_cookies is null)
        {
            // Parsed as Kestrel's requests parse them, from the same header values.
            var values = new List<string>();
            for (var i = 0; i < HeaderCount; i++)
                if (Ascii.EqualsIgnoreCase(Name(i), "Cookie"u8)) values.Add(Encoding.ASCII.GetString(Value(i)));
            var features = new FeatureCollection();
            var headers = new HeaderDictionary { ["Cookie"] = new StringValues([.. values]) };
            features.Set<IHttpRequestFeature>(new HttpRequestFeature { Headers = headers });
            _cookies = new RequestCookiesFeature(features).Cookies;
        }
        return _cookies[name];
    }

    public IPAddress ClientAddress(IReadOnlyList<IPNetwork> trustedProxies) =>
        TrustedProxies.Client(Peer, trustedProxies, this, static r => r.Header(ForwardedHeaders.For));

    /// <summary>Path characters that need no escaping and query characters (RFC 3986), and '%' in the query.</summary>
    private static readonly SearchValues<byte> TargetChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"u8);

    private static readonly SearchValues<byte> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    private static readonly SearchValues<byte> FieldChars = SearchValues.Create(
        [(byte)'\t', .. Enumerable.Range(0x20, 0x7f - 0x20).Select(c => (byte)c)]);

    private static readonly SearchValues<byte> HostChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."u8);
}
