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
}
