namespace EdgeEru.Lb.FastPath;

/// <summary>Kestrel's limits on a request head (KestrelServerLimits): the fast path leaves a head beyond them to Kestrel.</summary>
internal readonly record struct HeadLimits(int RequestLine, int Headers, int HeaderCount)
{
    public static readonly HeadLimits KestrelDefaults = new(8 * 1024, 32 * 1024, 100);
}
