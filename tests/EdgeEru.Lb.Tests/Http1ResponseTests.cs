using System.Text;
using EdgeEru.Lb.Http1;
using Microsoft.AspNetCore.Http;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>Parsing of the workloads' HTTP/1.1 responses (both HTTP/1.1 ways), byte by byte.</summary>
public sealed class Http1ResponseTests
{
    private static (bool Complete, ResponseHead Head, HeaderDictionary Headers) Parse(string text, bool head = false)
    {
        var headers = new HeaderDictionary();
        var complete = ResponseParser.TryParse(Encoding.Latin1.GetBytes(text), head, headers, out var h);
        return (complete, h, headers);
    }

    [Fact]
    public void A_plain_response_is_framed_by_its_length_and_keeps_the_connection()
    {
        var (complete, head, headers) = Parse(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello");
        Assert.True(complete);
        Assert.Equal((200, BodyFraming.ContentLength, 5L, true), (head.Status, head.Framing, head.ContentLength, head.KeepAlive));
        Assert.Equal("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\n".Length, head.Length);
        Assert.Equal("text/plain", headers["Content-Type"].ToString());
        Assert.Equal("1,2", headers["X-A"].ToString());
        Assert.False(headers.ContainsKey("Content-Length")); // the forwarder sets it from the framing
    }

    [Fact]
    public void An_incomplete_head_adds_nothing_yet()
    {
        var (complete, _, headers) = Parse("HTTP/1.1 200 OK\r\nX-A: 1\r\n");
        Assert.False(complete);
        Assert.Empty(headers);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Chunked", true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Chunked", true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "UntilClose", false)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", "UntilClose", false)]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n", "None", true)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "None", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", "ContentLength", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "ContentLength", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", "ContentLength", true)]
    // Both framings: chunked wins and the connection is not reused (RFC 9112 §6.3).
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "Chunked", false)]
    public void Framing_and_reuse_follow_RFC_9112(string text, string framing, bool keepAlive)
    {
        var (complete, head, headers) = Parse(text);
        Assert.True(complete);
        Assert.Equal((framing, keepAlive), (head.Framing.ToString(), head.KeepAlive));
        Assert.False(headers.ContainsKey("Transfer-Encoding"));
        Assert.False(headers.ContainsKey("Connection"));
    }

    [Fact]
    public void A_response_to_HEAD_has_no_body_but_keeps_its_declared_length()
    {
        var (_, head, _) = Parse("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", head: true);
        Assert.Equal((BodyFraming.None, 1234L), (head.Framing, head.ContentLength));
    }

    [Fact]
    public void Headers_the_Connection_header_names_are_not_handed_on()
    {
        var (_, _, headers) = Parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\n\r\n");
        Assert.Equal(["X-End"], headers.Keys);
    }

    [Theory]
    [InlineData("HTTP/2 200 OK\r\n\r\n", "status line")]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n", "status code")]
    [InlineData("HTTP/1.1 20x OK\r\n\r\n", "status code")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "two different Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length")]
    // Not only digits (RFC 9110 §8.6): a sign, a sign on zero, inner junk, hex, nothing, a list.
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length")]
    [InlineData("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "header name")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "folding")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: a\u0001b\r\n\r\n", "control character")]
    [InlineData("HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "without a name")]
    public void Malformed_heads_are_refused_with_the_reason(string text, string reason)
    {
        var e = Assert.Throws<InvalidDataException>(() => Parse(text));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_Content_Length_of_digits_is_read_with_the_whitespace_around_it_and_leading_zeros()
    {
        var (_, head, _) = Parse("HTTP/1.1 200 OK\r\nContent-Length: \t007 \r\n\r\n");
        Assert.Equal(7L, head.ContentLength);
    }

    [Fact]
    public void Identical_duplicate_Content_Length_values_are_one_length()
    {
        var (_, head, _) = Parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n");
        Assert.Equal(7L, head.ContentLength);
    }

    private static (string Data, bool Done) Decode(string wire, int feed)
    {
        // Feeds the decoder in pieces of `feed` bytes, as reads from a socket would come.
        var bytes = Encoding.Latin1.GetBytes(wire);
        var decoder = new ChunkedDecoder();
        var data = new StringBuilder();
        var buffered = new List<byte>();
        for (var i = 0; i < bytes.Length && !decoder.Done; i += feed)
        {
            buffered.AddRange(bytes.Skip(i).Take(feed));
            while (buffered.Count > 0 && !decoder.Done)
            {
                var span = buffered.ToArray();
                var used = decoder.Step(span, out var start, out var length);
                if (used == 0) break;
                data.Append(Encoding.Latin1.GetString(span, start, length));
                buffered.RemoveRange(0, used);
            }
        }
        return (data.ToString(), decoder.Done);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(1000)]
    public void Chunked_bodies_decode_in_any_pieces_with_extensions_and_trailers(int feed)
    {
        var (data, done) = Decode("5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n", feed);
        Assert.True(done);
        Assert.Equal("helloabcdefghijklmnopqrstuvwxyz", data);
    }

    [Theory]
    [InlineData("zz\r\n")]
    [InlineData("5\r\nhelloXX")]
    [InlineData("-5\r\nhello\r\n")]
    public void Broken_chunk_framing_is_refused(string wire) =>
        Assert.Throws<InvalidDataException>(() => Decode(wire + "0\r\n\r\n", 1000));
}
