using System.Net;
using System.Text;
using EdgeEru.Lb.FastPath;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>What the HTTP/1.1 fast path takes and what it leaves to Kestrel, byte by byte, and the facts it gives the rule graph.</summary>
public sealed class FastPathRequestTests
{
    private static (HeadStatus Status, FastPathRequest Request) Parse(string text, int offset = 0)
    {
        var request = new FastPathRequest { Peer = IPAddress.Parse("10.0.0.9"), PeerText = "10.0.0.9" };
        var bytes = new byte[FastPathRequest.MaxHead + 64];
        var n = Encoding.Latin1.GetBytes(text, bytes.AsSpan(offset));
        return (request.Parse(bytes, offset, offset + n), request);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")]
    [InlineData("HEAD /x/y?q=1&r=%41 HTTP/1.1\r\nHost: a.test:8080\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")]
    [InlineData("GET /a;b/c:d@e!$&'()*+,= HTTP/1.1\r\nhost:a.test\r\nX-Empty:\r\n\r\n")]
    public void Plain_GET_and_HEAD_heads_are_the_fast_paths(string text) => Assert.Equal(HeadStatus.Complete, Parse(text).Status);

    [Theory]
    [InlineData("")]
    [InlineData("GE")]
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\n")]
    [InlineData("HEAD / HTTP/1.1\r\nHost: a.test\r\n\r")]
    public void A_head_still_coming_is_incomplete(string text) => Assert.Equal(HeadStatus.Incomplete, Parse(text).Status);

    [Theory]
    [InlineData("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx")]            // a method with a body
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]                                          // HTTP/2's preface
    [InlineData("\u0016\u0003\u0001\u0002\u0000")]                                            // TLS on a plain port
    [InlineData("GET / HTTP/1.0\r\nHost: a.test\r\n\r\n")]                                    // HTTP/1.0
    [InlineData("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")]                       // absolute form
    [InlineData("GET /a%2Fb HTTP/1.1\r\nHost: a.test\r\n\r\n")]                               // escapes in the path
    [InlineData("GET /a/../b HTTP/1.1\r\nHost: a.test\r\n\r\n")]                              // dot segments
    [InlineData("GET /a b HTTP/1.1\r\nHost: a.test\r\n\r\n")]                                 // a space in the target
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")]                    // two hosts
    [InlineData("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")]                                     // no host
    [InlineData("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")]                                  // an IPv6 literal
    [InlineData("GET / HTTP/1.1\r\nHost: a.test:99999x\r\n\r\n")]                             // a bad port
    [InlineData("GET / HTTP/1.1\r\nHost: a.test:65536\r\n\r\n")]                               // a port too high
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n")]              // a length, even 0
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: -0\r\n\r\n")]             // a bad one (Kestrel: 400)
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")]     // a coding
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Private\r\n\r\n")]    // more hop-by-hop headers
    [InlineData("GET / HTTP/1.1\r\nHost : a.test\r\n\r\n")]                                   // a space before the colon
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n")]                        // obsolete folding
    [InlineData("GET / HTTP/1.1\nHost: a.test\r\n\r\n")]                                      // a bare LF
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nX: a\rb\r\n\r\n")]                         // a bare CR
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nX: caf\u00e9\r\n\r\n")]                    // obs-text
    [InlineData("GET / HTTP/1.1\r\nHost: a.test\r\nX: a\u0000b\r\n\r\n")]                     // NUL
    public void Anything_else_is_left_to_Kestrel(string text) => Assert.Equal(HeadStatus.ForKestrel, Parse(text).Status);

    [Fact]
    public void A_head_that_does_not_end_within_the_limit_is_left_to_Kestrel()
    {
        var text = "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + new string('x', FastPathRequest.MaxHead) + "\r\n\r\n";
        Assert.Equal(HeadStatus.ForKestrel, Parse(text[..FastPathRequest.MaxHead]).Status);
        Assert.Equal(HeadStatus.ForKestrel, Parse(text).Status);
    }

    [Fact]
    public void The_facts_are_those_Kestrel_gives_for_the_same_request()
    {
        const string text = "HEAD /shop/cart?item=a%20b&Item=c&flag HTTP/1.1\r\nHost: shop.test:8080\r\nX-Tag: one\r\nx-tag:  two \r\n" +
            "Cookie: uid=42; theme=dark\r\nCookie: lang=en\r\nConnection: close\r\n\r\nGET /next";
        var (status, r) = Parse(text, offset: 5);
        Assert.Equal(HeadStatus.Complete, status);
        Assert.Equal(text.IndexOf("GET /next", StringComparison.Ordinal), r.Length);
        Assert.Equal(("HEAD", "/shop/cart", true, true), (r.Method, r.Path, r.IsHead, r.Close));
        Assert.Equal("shop.test", r.Host());
        Assert.Equal("/shop/cart?item=a%20b&Item=c&flag", r.Target);
        Assert.Equal("one,two", r.Header("X-TAG"));
        Assert.Null(r.Header("X-None"));
        Assert.Equal("a b,c", r.Query("item"));
        Assert.Equal("", r.Query("flag"));
        Assert.Null(r.Query("none"));
        Assert.Equal(("42", "dark", "en"), (r.Cookie("uid"), r.Cookie("theme"), r.Cookie("lang")));
        Assert.Null(r.Cookie("none"));
        Assert.Equal(IPAddress.Parse("10.0.0.9"), r.ClientAddress([]));
        Assert.Equal(IPAddress.Parse("10.0.0.9"), r.ClientAddress([IPNetwork.Parse("192.168.0.0/16")]));
    }

    [Fact]
    public void X_Forwarded_For_names_the_client_only_behind_a_trusted_proxy()
    {
        var (_, r) = Parse("GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.3\r\n\r\n");
        Assert.Equal(IPAddress.Parse("10.0.0.9"), r.ClientAddress([]));
        Assert.Equal(IPAddress.Parse("203.0.113.7"), r.ClientAddress([IPNetwork.Parse("10.0.0.0/8")]));
    }

    [Fact]
    public void Without_a_cookie_header_no_cookie_is_parsed_and_a_path_repeated_on_a_connection_is_one_string()
    {
        var request = new FastPathRequest();
        var first = Encoding.ASCII.GetBytes("GET /same HTTP/1.1\r\nHost: a.test\r\n\r\n");
        var second = Encoding.ASCII.GetBytes("GET /same HTTP/1.1\r\nHost: a.test\r\n\r\n");
        Assert.Equal(HeadStatus.Complete, request.Parse(first, 0, first.Length));
        var path = request.Path;
        Assert.Null(request.Cookie("uid"));
        Assert.Equal(HeadStatus.Complete, request.Parse(second, 0, second.Length));
        Assert.Same(path, request.Path);
    }
}
