using System.Globalization;
using System.Text;
using EdgeEru.Lb.Proxy;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// The encoding Kestrel decodes a request's Content-Length with: what it gives Kestrel's number parser
/// (NumberStyles.Integer into 20 characters, as HttpRequestHeaders does), byte by byte.
/// </summary>
public sealed class ContentLengthDigitsTests
{
    /// <summary>The number Kestrel would read, or null when it refuses the value.</summary>
    private static long? AsKestrelReadsIt(string value)
    {
        Span<char> chars = stackalloc char[20];
        var n = ContentLengthDigits.Instance.GetChars(Encoding.Latin1.GetBytes(value), chars);
        return n <= 19 && long.TryParse(chars[..n], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : null;
    }

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("5", 5L)]
    [InlineData("0005", 5L)]
    [InlineData("9223372036854775807", long.MaxValue)]
    public void Digits_are_the_number_they_spell(string value, long expected) => Assert.Equal(expected, AsKestrelReadsIt(value));

    [Theory]
    [InlineData("+5")]
    [InlineData("-0")]
    [InlineData("5 5")]
    [InlineData(" 5")]   // Kestrel trims the whitespace around a value before it decodes it
    [InlineData("0x5")]
    [InlineData("")]
    [InlineData("5, 5")]
    [InlineData("5\u00a0")]
    [InlineData("000000000000000000005")] // longer than Kestrel's 20 characters: not read as a shorter number
    [InlineData("9223372036854775808")]
    public void Anything_else_is_refused(string value) => Assert.Null(AsKestrelReadsIt(value));

    [Fact]
    public void Only_Content_Length_gets_it()
    {
        Assert.Same(ContentLengthDigits.Instance, ContentLengthDigits.Select(Microsoft.Net.Http.Headers.HeaderNames.ContentLength));
        Assert.Same(ContentLengthDigits.Instance, ContentLengthDigits.Select("content-length"));
        Assert.Null(ContentLengthDigits.Select("Content-Type"));
        // Kestrel's message when it refuses one decodes the value with it too: anything but digits shows as '?'.
        Assert.Equal("?5", ContentLengthDigits.Instance.GetString("+5"u8));
    }
}
