namespace EdgeEru.Dns.Answers;

/// <summary>
/// Keys for the tables' dictionaries, made from the query's labels in a stack buffer: the tables are keyed by
/// string and looked up by span (alternate lookup), so a lookup allocates nothing.
/// </summary>
internal static class LookupKey
{
    /// <summary>The label's ASCII bytes as characters, in <paramref name="into"/>.</summary>
    public static Span<char> Chars(ReadOnlySpan<byte> ascii, Span<char> into)
    {
        for (var i = 0; i < ascii.Length; i++) into[i] = (char)ascii[i];
        return into[..ascii.Length];
    }

    /// <summary><c>{first}.{second}</c> ("web.shop", "_http._tcp") in <paramref name="into"/>.</summary>
    public static Span<char> Dotted(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, Span<char> into)
    {
        var n = Chars(first, into).Length;
        into[n++] = '.';
        n += Chars(second, into[n..]).Length;
        return into[..n];
    }
}
