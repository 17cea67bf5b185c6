using System.Threading.Channels;
using Prometheus;

namespace EdgeEru.Agent.Logs.Sinks;

/// <summary>
/// A destination of log records with a bounded buffer of its own: <see cref="Offer"/> never waits (a full
/// buffer drops the line and counts it), and one writer loop per sink connects, writes and reconnects
/// with backoff, so a slow or dead sink never holds up a container or the other sinks.
/// </summary>
public abstract class LogSink : IAsyncDisposable
{
    private static readonly Counter Lines = Metrics.CreateCounter("eru_agent_log_lines_total",
        "Log lines per sink: shipped, or dropped (buffer full or write failed).",
        new CounterConfiguration { LabelNames = ["sink", "outcome"] });
    private static readonly Gauge UpGauge = Metrics.CreateGauge("eru_agent_log_sink_up", "1 while the sink is connected.",
        new GaugeConfiguration { LabelNames = ["sink"] });
    private static readonly Gauge Queued = Metrics.CreateGauge("eru_agent_log_sink_buffered", "Lines waiting in the sink's buffer.",
        new GaugeConfiguration { LabelNames = ["sink"] });

    private readonly Channel<LogRecord> _buffer;
    private readonly HashSet<string> _apps;
    private readonly CancellationTokenSource _stop = new();
    private readonly Counter.Child _shipped;
    private readonly Counter.Child _dropped;
    private readonly Gauge.Child _up;
    private Task _run = Task.CompletedTask;
    private long _shippedCount;
    private long _droppedCount;

    protected LogSink(string name, LogSinkOptions options, ILogger log)
    {
        Name = name;
        Log = log;
        Options = options;
        _apps = [.. options.Apps];
        _buffer = Channel.CreateBounded<LogRecord>(
            new BoundedChannelOptions(options.Buffer) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });
        _shipped = Lines.WithLabels(name, "shipped");
        _dropped = Lines.WithLabels(name, "dropped");
        _up = UpGauge.WithLabels(name);
        var queued = Queued.WithLabels(name);
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => queued.Set(_buffer.Reader.Count));
    }

    public static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(30);

    public string Name { get; }
    protected ILogger Log { get; }
    protected LogSinkOptions Options { get; }
    public long Shipped => Interlocked.Read(ref _shippedCount);
    public long Dropped => Interlocked.Read(ref _droppedCount);
    public bool IsUp { get; private set; }

    public bool Accepts(LogRecord r) => _apps.Count == 0 || _apps.Contains(r.App);

    /// <summary>Queues a line; never waits.</summary>
    public void Offer(LogRecord r)
    {
        if (_buffer.Writer.TryWrite(r)) return;
        Drop(1);
    }

    public void Start() => _run = Task.Run(RunAsync);

    private void Drop(int n)
    {
        Interlocked.Add(ref _droppedCount, n);
        _dropped.Inc(n);
    }

    private async Task RunAsync()
    {
        var ct = _stop.Token;
        var backoff = TimeSpan.FromMilliseconds(200);
        var batch = new List<LogRecord>(256);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await ConnectAsync(ct);
                SetUp(true);
                backoff = TimeSpan.FromMilliseconds(200);
                while (await _buffer.Reader.WaitToReadAsync(ct))
                {
                    while (batch.Count < 256 && _buffer.Reader.TryRead(out var r)) batch.Add(r);
                    // A peer that stops reading fills the socket; past the timeout the sink reconnects.
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(WriteTimeout);
                    foreach (var r in batch) await WriteAsync(r, timeout.Token);
                    await FlushAsync(timeout.Token);
                    Interlocked.Add(ref _shippedCount, batch.Count);
                    _shipped.Inc(batch.Count);
                    batch.Clear();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException
                or UnauthorizedAccessException)
            {
                if (IsUp || backoff == TimeSpan.FromMilliseconds(200))
                    Log.LogWarning("log sink {Sink}: {Error}; lines wait in its buffer (up to its bound), then are dropped",
                        Name, ex.Message);
                SetUp(false);
                Drop(batch.Count); // what was being written when it failed
                batch.Clear();
                await CloseAsync();
                try
                {
                    await Task.Delay(backoff, ct);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
        await CloseAsync();
    }

    private void SetUp(bool up)
    {
        IsUp = up;
        _up.Set(up ? 1 : 0);
    }

    /// <summary>Opens the connection or file (with its own timeout).</summary>
    protected abstract Task ConnectAsync(CancellationToken ct);
    protected abstract ValueTask WriteAsync(LogRecord r, CancellationToken ct);
    protected abstract Task FlushAsync(CancellationToken ct);
    protected abstract ValueTask CloseAsync();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _run;
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
