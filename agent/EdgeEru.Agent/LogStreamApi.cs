using System.Security.Cryptography;
using System.Text;
using EdgeEru.Agent.Logs;
using EdgeEru.Registry.Model;

namespace EdgeEru.Agent;

/// <summary>
/// <c>GET /logs?app=A[&amp;entrypoint=E]|container=ID[&amp;tail=N][&amp;follow=true]</c>: JSON lines of the node's
/// containers. With follow, the tail is followed by one empty line, then live lines until the client
/// goes. Behind <c>Authorization: Bearer {Http:Token}</c>; without a configured token the stream is off.
/// </summary>
internal static class LogStreamApi
{
    private static readonly byte[] Newline = "\n"u8.ToArray();

    public static void Map(WebApplication app, string? token)
    {
        var expected = string.IsNullOrEmpty(token) ? null : Encoding.UTF8.GetBytes("Bearer " + token);
        if (expected is null) app.Logger.LogWarning("no Http:Token configured: the log stream API (/logs) answers 403");
        app.MapGet("/logs", async (HttpContext ctx, LogHub hub, IHostApplicationLifetime lifetime) =>
        {
            if (expected is null)
            {
                await Problem(ctx, 403, "the log stream is off: configure Http:Token");
                return;
            }
            if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString()), expected))
            {
                await Problem(ctx, 401, "missing or wrong bearer token");
                return;
            }
            var q = ctx.Request.Query;
            var (filter, tail, follow, problem) = Parse(q["container"], q["app"], q["entrypoint"], q["tail"], q["follow"]);
            if (problem is not null)
            {
                await Problem(ctx, 400, problem);
                return;
            }
            ctx.Response.ContentType = "application/x-ndjson";
            // Ends when the client goes or the agent stops (an open stream must not hold up a shutdown).
            using var ends = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, lifetime.ApplicationStopping);
            var ct = ends.Token;
            using var follower = follow ? hub.Follow(filter!) : null; // before the tail: nothing falls between the two
            long last = 0;
            var body = ctx.Response.Body;
            try
            {
                foreach (var r in hub.Tail(filter!, tail))
                {
                    await WriteAsync(body, r, ct);
                    last = r.Seq;
                }
                if (follower is null) return;
                await body.WriteAsync(Newline, ct);
                await body.FlushAsync(ct);
                var reader = follower.Lines.Reader;
                while (await reader.WaitToReadAsync(ct))
                {
                    while (reader.TryRead(out var r))
                        if (r.Seq > last) await WriteAsync(body, r, ct);
                    await body.FlushAsync(ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The client went.
            }
        });
    }

    private static async Task WriteAsync(Stream body, LogRecord r, CancellationToken ct)
    {
        await body.WriteAsync(r.Json, ct);
        await body.WriteAsync(Newline, ct);
    }

    /// <summary>Validates the query: exactly one of container and app; names as the registry has them.</summary>
    internal static (LogFilter? Filter, int Tail, bool Follow, string? Problem) Parse(
        string? container, string? app, string? entrypoint, string? tail, string? follow)
    {
        if (string.IsNullOrEmpty(container) == string.IsNullOrEmpty(app))
            return (null, 0, false, "give either container=ID or app=APP (with an optional entrypoint=EP)");
        if (!string.IsNullOrEmpty(container) && (container.Length is < 4 or > 64 || !container.All(char.IsAsciiHexDigitLower)))
            return (null, 0, false, $"container \"{container}\" must be 4-64 lowercase hex digits of a container id");
        if (!string.IsNullOrEmpty(app) && !Names.IsLabel(app)) return (null, 0, false, $"app \"{app}\" is not an app name");
        if (!string.IsNullOrEmpty(entrypoint) && !Names.IsLabel(entrypoint))
            return (null, 0, false, $"entrypoint \"{entrypoint}\" is not an entrypoint name");
        if (!string.IsNullOrEmpty(entrypoint) && string.IsNullOrEmpty(app)) return (null, 0, false, "entrypoint needs app");
        var n = 0;
        if (!string.IsNullOrEmpty(tail)
            && (!int.TryParse(tail, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out n)
                || n > 100_000))
            return (null, 0, false, $"tail \"{tail}\" must be a number of lines from 0 to 100000");
        bool f = false;
        if (!string.IsNullOrEmpty(follow) && !bool.TryParse(follow, out f) && follow != "1" && follow != "0")
            return (null, 0, false, $"follow \"{follow}\" must be true or false");
        f = f || follow == "1";
        return (new LogFilter(NullIfEmpty(container), NullIfEmpty(app), NullIfEmpty(entrypoint)), n, f, null);
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static Task Problem(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new { error = message });
    }
}
