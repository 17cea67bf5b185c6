using System.Numerics;
using EdgeEru.Ssh.Wire;
using Xunit;

namespace EdgeEru.Ssh.Tests;

public class WireTests
{
    // The mpint examples of RFC 4251 §5.
    [Theory]
    [InlineData("0", "00000000")]
    [InlineData("9a378f9b2e332a7", "0000000809a378f9b2e332a7")]
    [InlineData("80", "000000020080")]
    [InlineData("-1234", "00000002edcc")]
    [InlineData("-deadbeef", "00000005ff21524111")]
    public void Mpint_matches_the_rfc_examples(string hex, string wire)
    {
        var negative = hex.StartsWith('-');
        var v = BigInteger.Parse("0" + hex.TrimStart('-'), System.Globalization.NumberStyles.HexNumber);
        if (negative) v = -v;
        var w = new SshWriter().Mpint(v);
        Assert.Equal(wire, Convert.ToHexStringLower(w.WrittenSpan));
        var r = new SshReader(w.WrittenSpan);
        Assert.Equal(v, r.Mpint());
        Assert.True(r.AtEnd);
    }

    [Theory]
    [InlineData("00", "00000000")]
    [InlineData("0000ff", "0000000200ff")]
    [InlineData("7f01", "000000027f01")]
    public void Unsigned_mpint_drops_leading_zeros_and_adds_one_for_the_sign_bit(string magnitude, string wire)
    {
        var w = new SshWriter().MpintUnsigned(Convert.FromHexString(magnitude));
        Assert.Equal(wire, Convert.ToHexStringLower(w.WrittenSpan));
    }

    [Fact]
    public void Mpint_with_a_needless_leading_byte_is_refused()
    {
        var e = Assert.Throws<SshProtocolException>(() => new SshReader(Convert.FromHexString("000000020001")).Mpint("e"));
        Assert.Contains("needless", e.Message);
    }

    [Fact]
    public void Strings_round_trip_and_truncation_names_the_field()
    {
        var w = new SshWriter().String("hello").UInt32(7).Boolean(true).UInt64(1UL << 40).NameList(["a", "b@c"]);
        var r = new SshReader(w.WrittenSpan);
        Assert.Equal("hello", r.Utf8());
        Assert.Equal(7u, r.UInt32());
        Assert.True(r.Boolean());
        Assert.Equal(1UL << 40, r.UInt64());
        Assert.Equal(["a", "b@c"], r.NameList());
        Assert.True(r.AtEnd);

        var truncated = w.WrittenSpan[..7].ToArray();
        var e = Assert.Throws<SshProtocolException>(() => new SshReader(truncated).Utf8("user name"));
        Assert.Contains("user name", e.Message);
    }

    [Theory]
    [InlineData("a,,b")]
    [InlineData(",a")]
    [InlineData("a b")]
    public void Bad_name_lists_are_refused(string list)
    {
        var bytes = new SshWriter().String(list).ToArray();
        Assert.Throws<SshProtocolException>(() => new SshReader(bytes).NameList());
    }

    [Fact]
    public void Empty_name_list_is_no_names()
    {
        var bytes = new SshWriter().String("").ToArray();
        Assert.Empty(new SshReader(bytes).NameList());
    }

    [Fact]
    public void Invalid_utf8_is_refused()
    {
        var bytes = new SshWriter().String([0xff, 0xfe]).ToArray();
        Assert.Throws<SshProtocolException>(() => new SshReader(bytes).Utf8("command"));
    }
}
