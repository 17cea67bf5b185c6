using System.Text;
using Microsoft.Net.Http.Headers;

namespace EdgeEru.Lb.Proxy;

/// <summary>
/// A request's Content-Length must be digits only (RFC 9110 §8.6), on Kestrel's ways too. Kestrel parses it with
/// Utf8Parser, which takes a sign: "+5" and "-0" pass, and a front that reads them otherwise disagrees with the LB
/// on where the body ends. Kestrel keeps only the number, so no middleware can see the sign; but when
/// <c>KestrelServerOptions.RequestHeaderEncodingSelector</c> names an encoding for Content-Length, Kestrel decodes
/// the value with it and parses the characters (HttpRequestHeaders.AppendContentLengthCustomEncoding). This
/// encoding decodes digits as themselves and any other byte as '?', which no number parses: Kestrel then refuses
/// the request itself, with 400 and the connection closed, before anything is forwarded. Other headers keep
/// Kestrel's default decoding (the selector answers null). The LB's tests check the refusal on every way.
/// </summary>
internal sealed class ContentLengthDigits : Encoding
{
    public static readonly ContentLengthDigits Instance = new();

    /// <summary>For <c>RequestHeaderEncodingSelector</c>: this encoding for Content-Length, Kestrel's default for the rest.</summary>
    public static Encoding? Select(string name) =>
        ReferenceEquals(name, HeaderNames.ContentLength) || name.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase)
            ? Instance
            : null;

    /// <summary>
    /// Digits as themselves, anything else as '?'. Kestrel decodes into 20 characters: a longer value is cut and
    /// starts with '?', so it is refused rather than read as a shorter number.
    /// </summary>
    public override int GetChars(ReadOnlySpan<byte> bytes, Span<char> chars)
    {
        var n = Math.Min(bytes.Length, chars.Length);
        for (var i = 0; i < n; i++) chars[i] = bytes[i] is >= (byte)'0' and <= (byte)'9' ? (char)bytes[i] : '?';
        if (n < bytes.Length && n > 0) chars[0] = '?';
        return n;
    }

    public override int GetChars(byte[] bytes, int byteIndex, int byteCount, char[] chars, int charIndex) =>
        GetChars(bytes.AsSpan(byteIndex, byteCount), chars.AsSpan(charIndex));

    public override int GetCharCount(byte[] bytes, int index, int count) => count;

    public override int GetMaxCharCount(int byteCount) => byteCount;

    // Never used to encode (Kestrel only decodes request headers); one byte per character, as Latin-1.
    public override int GetByteCount(char[] chars, int index, int count) => count;

    public override int GetBytes(char[] chars, int charIndex, int charCount, byte[] bytes, int byteIndex) =>
        Latin1.GetBytes(chars, charIndex, charCount, bytes, byteIndex);

    public override int GetMaxByteCount(int charCount) => charCount;
}
