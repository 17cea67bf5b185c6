using System.Globalization;
using System.Net.Sockets;
using System.Text;
using EdgeEru.Docker;
using Prometheus;

namespace EdgeEru.Agent.Stats;

/// <summary>
/// Samples every running EdgeEru container of the node each interval — from its cgroup, or from
/// <c>docker stats</c> where cgroups cannot be read — into Prometheus series labelled by app,
/// entrypoint, ident and node, and optionally sends the same values to carbon (graphite plaintext).
/// </summary>
public sealed class ContainerMetrics(
    NodeAgent agent, DockerEngine engine, Cgroups cgroups, MetricsOptions options, ILogger<ContainerMetrics> log) : IDisposable
{
    private static readonly string[] Labels = ["node", "app", "entrypoint", "ident"];
    private static readonly Gauge Memory = Metrics.CreateGauge("eru_container_memory_bytes", "Memory the container uses (cgroup usage).",
        new GaugeConfiguration { LabelNames = Labels });
    private static readonly Gauge MemoryLimit = Metrics.CreateGauge("eru_container_memory_limit_bytes",
        "The container's memory limit (0: none).", new GaugeConfiguration { LabelNames = Labels });
    private static readonly Counter Cpu = Metrics.CreateCounter("eru_container_cpu_seconds_total", "CPU time the container used.",
        new CounterConfiguration { LabelNames = Labels });
    private static readonly Counter NetRx = Metrics.CreateCounter("eru_container_network_receive_bytes_total",
        "Bytes received over the container's devices (not loopback).", new CounterConfiguration { LabelNames = Labels });
    private static readonly Counter NetTx = Metrics.CreateCounter("eru_container_network_transmit_bytes_total",
        "Bytes sent over the container's devices (not loopback).", new CounterConfiguration { LabelNames = Labels });
    private static readonly Counter BlkRead = Metrics.CreateCounter("eru_container_block_read_bytes_total",
        "Bytes the container read from block devices.", new CounterConfiguration { LabelNames = Labels });
    private static readonly Counter BlkWrite = Metrics.CreateCounter("eru_container_block_write_bytes_total",
        "Bytes the container wrote to block devices.", new CounterConfiguration { LabelNames = Labels });
    private static readonly Counter Samples = Metrics.CreateCounter("eru_agent_container_samples_total",
        "Container samples taken, by source (cgroup, docker) or failed.", new CounterConfiguration { LabelNames = ["node", "source"] });
    private static readonly Counter GraphiteSent = Metrics.CreateCounter("eru_agent_graphite_lines_total",
        "Graphite lines sent, or dropped when carbon was not reachable.", new CounterConfiguration { LabelNames = ["node", "outcome"] });

    private readonly Dictionary<string, (string[] Labels, DateTimeOffset StartedAt)> _series = new(StringComparer.Ordinal);
    private Socket? _carbon;

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.Interval);
        do
        {
            try
            {
                await SampleAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogWarning("container metrics: {Error}", ex.Message);
            }
        }
        while (await WaitAsync(timer, ct));
        Dispose();
    }

    public void Dispose()
    {
        _carbon?.Dispose();
        _carbon = null;
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One round over the node's running containers.</summary>
    public async Task SampleAsync(CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var graphite = new StringBuilder();
        var running = agent.Containers.Values
            .Where(c => c.Running && c.Labels.ContainsKey(DockerEngine.AppLabel) && agent.IsRecorded(c.Id)).ToList(); // this cluster's only
        foreach (var c in running)
        {
            var sample = cgroups.Read(c.Pid);
            var source = "cgroup";
            if (sample is null)
            {
                source = "docker";
                sample = await engine.StatsAsync(c.Id, ct);
            }
            Samples.WithLabels(agent.Node, sample is null ? "failed" : source).Inc();
            if (sample is null) continue;
            string[] labels = [agent.Node, c.Labels[DockerEngine.AppLabel], c.Labels.GetValueOrDefault(DockerEngine.EntrypointLabel, ""),
                c.Labels.GetValueOrDefault(DockerEngine.IdentLabel, c.Id[..Math.Min(12, c.Id.Length)])];
            // A restarted container's counters start again from zero: so do its series.
            if (_series.TryGetValue(c.Id, out var known) && known.StartedAt != c.StartedAt) Remove(known.Labels);
            _series[c.Id] = (labels, c.StartedAt);
            Memory.WithLabels(labels).Set(sample.MemoryBytes);
            MemoryLimit.WithLabels(labels).Set(c.MemoryLimit);
            Cpu.WithLabels(labels).IncTo(sample.CpuSeconds);
            NetRx.WithLabels(labels).IncTo(sample.NetRxBytes);
            NetTx.WithLabels(labels).IncTo(sample.NetTxBytes);
            BlkRead.WithLabels(labels).IncTo(sample.BlockReadBytes);
            BlkWrite.WithLabels(labels).IncTo(sample.BlockWriteBytes);
            if (!string.IsNullOrEmpty(options.Graphite)) Graphite(graphite, labels, sample, c.MemoryLimit, now);
        }
        var live = running.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _series.Keys.Where(id => !live.Contains(id)).ToList())
        {
            Remove(_series[gone].Labels);
            _series.Remove(gone);
        }
        if (graphite.Length > 0) await SendGraphiteAsync(graphite.ToString(), ct);
    }

    private static void Remove(string[] labels)
    {
        foreach (var g in new Collector[] { Memory, MemoryLimit }) ((Gauge)g).RemoveLabelled(labels);
        foreach (var c in new[] { Cpu, NetRx, NetTx, BlkRead, BlkWrite }) c.RemoveLabelled(labels);
    }

    /// <summary>Graphite plaintext: "{prefix}.{node}.{app}.{entrypoint}.{ident}.{metric} {value} {unix seconds}".</summary>
    internal void Graphite(StringBuilder sb, string[] labels, ContainerStatsSample s, long limit, DateTimeOffset now)
    {
        var path = string.Join('.', new[] { options.GraphitePrefix }.Concat(labels.Select(GraphiteSafe)));
        var t = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        void Line(string metric, double value) => sb.Append(path).Append('.').Append(metric).Append(' ')
            .Append(value.ToString("R", CultureInfo.InvariantCulture)).Append(' ').Append(t).Append('\n');
        Line("memory_bytes", s.MemoryBytes);
        Line("memory_limit_bytes", limit);
        Line("cpu_seconds", s.CpuSeconds);
        Line("net_rx_bytes", s.NetRxBytes);
        Line("net_tx_bytes", s.NetTxBytes);
        Line("blk_read_bytes", s.BlockReadBytes);
        Line("blk_write_bytes", s.BlockWriteBytes);
    }

    private static string GraphiteSafe(string part) => part.Length == 0
        ? "_"
        : new string(part.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' ? ch : '_').ToArray());

    private async Task SendGraphiteAsync(string lines, CancellationToken ct)
    {
        var count = lines.Count(ch => ch == '\n');
        try
        {
            if (_carbon is not { Connected: true })
            {
                _carbon?.Dispose();
                _carbon = new Socket(SocketType.Stream, ProtocolType.Tcp);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                await _carbon.ConnectAsync(Logs.LogSinkOptions.ParseAddress(options.Graphite)!, timeout.Token);
            }
            using var writeTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            writeTimeout.CancelAfter(TimeSpan.FromSeconds(3));
            await _carbon.SendAsync(Encoding.ASCII.GetBytes(lines), SocketFlags.None, writeTimeout.Token);
            GraphiteSent.WithLabels(agent.Node, "sent").Inc(count);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            GraphiteSent.WithLabels(agent.Node, "dropped").Inc(count);
            log.LogWarning("graphite {Address}: {Error}", options.Graphite, ex.Message);
            _carbon?.Dispose();
            _carbon = null;
        }
    }
}
