using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using Prometheus;

namespace EdgeEru.Lb.AccessLog;

/// <summary>One answered request, as the access log records it.</summary>
internal readonly record struct AccessEntry(
    DateTime Time, string Client, string Method, string Host, string Path, string Protocol, int Status, double DurationMs,
    string? Domain, string? Node, string? Upstream, string? Workload, string? UserAgent);

/// <summary>
/// The JSON access log (<c>Lb:AccessLog</c>: <c>stdout</c> or a file path; off when unset): one JSON object
/// per line, written off the request path by a background writer. When the writer falls behind, entries
/// are dropped and counted rather than slowing requests down.
/// </summary>
internal sealed class AccessLogWriter : BackgroundService
{
    private static readonly Counter Dropped = Metrics.CreateCounter("eru_lb_access_log_dropped_total",
        "Access log entries dropped because the writer fell behind.");

    private readonly string? _target;
    private readonly ILogger<AccessLogWriter> _log;
    private readonly Channel<AccessEntry> _entries = Channel.CreateBounded<AccessEntry>(
        new BoundedChannelOptions(65536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    public AccessLogWriter(IConfiguration config, ILogger<AccessLogWriter> log)
    {
        _target = config["Lb:AccessLog"] is { Length: > 0 } t ? t : null;
        _log = log;
    }

    public bool Enabled => _target is not null;

    public void Write(in AccessEntry entry)
    {
        if (!_entries.Writer.TryWrite(entry)) Dropped.Inc();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_target is null) return;
        Stream stream;
        try
        {
            stream = _target == "stdout"
                ? Console.OpenStandardOutput()
                : new FileStream(_target, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.LogError("access log {Target} cannot be opened: {Error}; requests are not logged", _target, ex.Message);
            return;
        }
        await using (stream)
        {
            var buffer = new ArrayBufferWriter<byte>(64 * 1024);
            await using var json = new Utf8JsonWriter(buffer);
            var reader = _entries.Reader;
            // On stdout the console logger writes too: batches stay under PIPE_BUF (4 KiB), so each write
            // lands whole and lines do not interleave. A file gets larger batches.
            var batch = _target == "stdout" ? 3500 : 60 * 1024;
            try
            {
                while (await reader.WaitToReadAsync(stoppingToken))
                {
                    // Drain what is there, then write it in one go.
                    while (buffer.WrittenCount < batch && reader.TryRead(out var e))
                    {
                        Format(json, e);
                        json.Flush();
                        json.Reset();
                        buffer.Write("\n"u8);
                    }
                    await stream.WriteAsync(buffer.WrittenMemory, stoppingToken);
                    await stream.FlushAsync(stoppingToken);
                    buffer.ResetWrittenCount();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            catch (IOException ex)
            {
                _log.LogError("access log {Target} failed: {Error}; requests are no longer logged", _target, ex.Message);
            }
        }
    }

    internal static void Format(Utf8JsonWriter w, in AccessEntry e)
    {
        w.WriteStartObject();
        w.WriteString("time"u8, e.Time);
        w.WriteString("client"u8, e.Client);
        w.WriteString("method"u8, e.Method);
        w.WriteString("host"u8, e.Host);
        w.WriteString("path"u8, e.Path);
        w.WriteString("protocol"u8, e.Protocol);
        w.WriteNumber("status"u8, e.Status);
        w.WriteNumber("duration_ms"u8, Math.Round(e.DurationMs, 3));
        if (e.Domain is not null) w.WriteString("domain"u8, e.Domain);
        if (e.Node is not null) w.WriteString("node"u8, e.Node);
        if (e.Upstream is not null) w.WriteString("upstream"u8, e.Upstream);
        if (e.Workload is not null) w.WriteString("workload"u8, e.Workload);
        if (e.UserAgent is not null) w.WriteString("user_agent"u8, e.UserAgent);
        w.WriteEndObject();
    }
}
