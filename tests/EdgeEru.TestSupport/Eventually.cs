namespace EdgeEru.TestSupport;

public static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds or the timeout passes; then fails with <paramref name="what"/>.</summary>
    public static async Task True(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds:F0}s waiting for: {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>The same with a condition that awaits (a query, an HTTP call); each attempt runs to its end.</summary>
    public static async Task True(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        await Value(async () => await condition() ? "" : null, timeout, what);

    /// <summary>Polls <paramref name="attempt"/> until it gives a value (not null), and returns it.</summary>
    public static async Task<T> Value<T>(Func<Task<T?>> attempt, TimeSpan timeout, string what) where T : class
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await attempt() is { } value) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds:F0}s waiting for: {what}");
            await Task.Delay(50);
        }
    }
}
