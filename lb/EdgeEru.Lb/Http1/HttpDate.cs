namespace EdgeEru.Lb.Http1;

/// <summary>The Date header's value, made once a second.</summary>
internal static class HttpDate
{
    private sealed record Stamp(long Second, string Value);
    private static Stamp? _current;

    public static string Now()
    {
        var now = DateTimeOffset.UtcNow;
        var second = now.ToUnixTimeSeconds();
        var current = Volatile.Read(ref _current);
        if (current?.Second == second) return current.Value;
        var stamp = new Stamp(second, now.ToString("r", System.Globalization.CultureInfo.InvariantCulture));
        Volatile.Write(ref _current, stamp);
        return stamp.Value;
    }
}
