using EdgeEru.Registry.Model;

namespace EdgeEru.Lb.Acme;

/// <summary>When to order: pure rules over the stored certificate, the clock and the failures so far.</summary>
internal static class AcmeSchedule
{
    /// <summary>Renewal starts two thirds into the lifetime: a third is left to retry through a CA's bad day.</summary>
    public static DateTimeOffset RenewAt(DateTimeOffset notBefore, DateTimeOffset notAfter) =>
        notBefore + (notAfter - notBefore) * 2 / 3;

    /// <summary>A domain needs an order when it has no ACME certificate yet, or its renewal time came.</summary>
    public static bool IsDue(LbCertificate? current, DateTimeOffset now) =>
        current?.Acme is not { } acme || now >= acme.RenewAt;

    /// <summary>Wait after <paramref name="failures"/> failed orders in a row: doubling from <paramref name="first"/>, capped.</summary>
    public static TimeSpan Backoff(int failures, TimeSpan first, TimeSpan max)
    {
        if (failures <= 0) return TimeSpan.Zero;
        var factor = Math.Pow(2, Math.Min(failures - 1, 30));
        return TimeSpan.FromTicks((long)Math.Min(first.Ticks * factor, max.Ticks));
    }
}
