namespace EdgeEru.Core.Server;

/// <summary>
/// Crashes for tests of crash safety, as etcd's gofail does: <c>Core:FaultInjection:CrashAt = POINT[:N]</c> kills
/// this process with SIGKILL (no clean-up, leases left to expire) the N-th time (default 1) an operation reaches
/// the yield point POINT ("created", "before-commit", "removed-container", "parked", ...). Off unless set.
/// </summary>
public static class FaultInjection
{
    public static Func<string, CancellationToken, Task>? CrashAt(string? setting)
    {
        if (string.IsNullOrWhiteSpace(setting)) return null;
        var parts = setting.Split(':');
        var point = parts[0];
        var nth = parts.Length > 1 && int.TryParse(parts[1], out var n) && n > 0 ? n : 1;
        var seen = 0;
        return (at, _) =>
        {
            if (at == point && Interlocked.Increment(ref seen) == nth)
            {
                Console.Error.WriteLine($"fault injection: crashing at {at} (#{nth})");
                Console.Error.Flush();
                System.Diagnostics.Process.GetCurrentProcess().Kill(); // SIGKILL to itself: no clean-up, no lease revocation
            }
            return Task.CompletedTask;
        };
    }
}
