using System.Diagnostics;
using System.Text.Json;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Perf;

/// <summary>
/// registry: 100k workloads with status in a real etcd; full snapshot build; 10k changes through the
/// watcher. Anchor: a raw read of the same keys (no decoding) in the same run, the faster of plain paging and the
/// watcher's own tiled reads.
/// </summary>
internal static class RegistryBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var workloads = BenchCluster.Arg(args, "--workloads", 100_000);
        var changes = BenchCluster.Arg(args, "--changes", 10_000);
        const int nodeCount = 200;
        using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));

        await using var etcd = await EtcdServer.StartAsync(new EtcdServerOptions
        {
            ExtraArgs = ["--quota-backend-bytes", (8L << 30).ToString(), "--max-txn-ops", "1024",
                "--max-request-bytes", (8 << 20).ToString()],
        });
        var options = new RegistryOptions { Endpoints = etcd.ClientUrl, RequestTimeout = TimeSpan.FromSeconds(60) };
        using var conn = new EtcdConnection(options);
        var store = new RegistryStore(conn);

        // Load: nodes with heartbeats, workloads with statuses under one kept lease.
        var sw = Stopwatch.StartNew();
        await using var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        await BenchCluster.LoadAsync(store, lease.Id, workloads, services: 200, nodeCount);
        var loadSeconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"loaded {workloads} workloads + statuses, {nodeCount} nodes in {loadSeconds:F1}s");

        // Anchor: the same keys read raw, nothing decoded, the faster of two ways: plain paging through one range in pages
        // of 10,000 keys (what a plain client does; smaller pages make etcd 3.4 count more), and the watcher's own reads
        // (its kinds as ranges of their own, large ones in tiles, pages of RegistryStore.PageSize).
        var plainMs = new List<double>();
        var tiledMs = new List<double>();
        long rawBytes = 0;
        for (var i = 0; i < 3; i++)
        {
            rawBytes = 0;
            sw.Restart();
            await RawRangeAsync(conn, store.Keys.Root, kv => rawBytes += kv.Value.Length, pageSize: 10_000);
            plainMs.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            long tiledBytes = 0;
            await store.RangePagesAsync(store.Keys.Root, 0, page =>
            {
                foreach (var kv in page) tiledBytes += kv.Value.Length;
            }, CancellationToken.None);
            tiledMs.Add(sw.Elapsed.TotalMilliseconds);
            if (tiledBytes != rawBytes) throw new InvalidOperationException($"tiled read got {tiledBytes} bytes, plain {rawBytes}");
        }
        var rawMs = plainMs.Min() <= tiledMs.Min() ? plainMs : tiledMs;

        // Full build, end to end: list + decode + index, until the first snapshot is published.
        var buildMs = new List<double>();
        long bytesPerWorkload = 0;
        RegistryWatcher? watcher = null;
        for (var i = 0; i < 3; i++)
        {
            if (watcher is not null) await watcher.DisposeAsync();
            watcher = null;
            watcher = new RegistryWatcher(conn, logs.CreateLogger<RegistryWatcher>());
            sw.Restart();
            watcher.Start();
            await watcher.Ready;
            buildMs.Add(sw.Elapsed.TotalMilliseconds);
            Console.WriteLine($"  build {i}: {buildMs[^1]:F0} ms");
            if (watcher.Current.LiveCount != workloads)
                throw new InvalidOperationException($"expected {workloads} live, got {watcher.Current.LiveCount}");
        }
        Console.WriteLine($"full build {buildMs.Min():F0} ms best of 3 (raw read anchor {rawMs.Min():F0} ms: plain 10k pages " +
            $"{plainMs.Min():F0} ms, tiled {tiledMs.Min():F0} ms; {rawBytes / 1e6:F1} MB)");

        // The CPU parts of the full build, apart: decoding (one core) and indexing decoded values.
        var raw = new List<Mvccpb.KeyValue>();
        await RawRangeAsync(conn, store.Keys.Root, raw.Add, pageSize: 10_000);
        var decoded = new List<RegistryChange>(raw.Count);
        sw.Restart();
        foreach (var kv in raw)
            if (RegistryChange.TryDecode(store.Keys, kv, false, out var c)) decoded.Add(c);
        var decodeUsPerValue = sw.Elapsed.TotalMicroseconds / raw.Count;
        raw.Clear();
        var allocBefore = GC.GetAllocatedBytesForCurrentThread();
        var gcsBefore = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        sw.Restart();
        RegistrySnapshot? pure = RegistrySnapshot.Build(decoded, 1);
        var pureBuildMs = sw.Elapsed.TotalMilliseconds;
        Console.WriteLine($"index build allocated {(GC.GetAllocatedBytesForCurrentThread() - allocBefore) / 1e6:F0} MB, " +
            $"GCs gen0/1/2 {GC.CollectionCount(0) - gcsBefore.Item1}/{GC.CollectionCount(1) - gcsBefore.Item2}/" +
            $"{GC.CollectionCount(2) - gcsBefore.Item3}");
        decoded.Clear();
        // Retained size of a snapshot: measured with and without it (shared pools excluded: they hold each value once).
        GC.Collect(2, GCCollectionMode.Forced, true, true);
        var withSnapshot = GC.GetTotalMemory(true);
        GC.KeepAlive(pure);
        pure = null;
        GC.Collect(2, GCCollectionMode.Forced, true, true);
        bytesPerWorkload = (withSnapshot - GC.GetTotalMemory(true)) / workloads;
        Console.WriteLine($"decode {decodeUsPerValue:F1} us/value on one core, index build {pureBuildMs:F0} ms, " +
            $"snapshot {bytesPerWorkload} B/workload");

        // 10k changes through the watcher: status flips and record updates, one at a time.
        var published = new System.Collections.Concurrent.ConcurrentQueue<(long Rev, long Ticks)>();
        using var sub = watcher!.Subscribe(s => published.Enqueue((s.Revision, Stopwatch.GetTimestamp())));
        var fromSend = new List<double>(changes);
        var fromAck = new List<double>(changes);
        var rnd = new Random(42);
        var watchDeadline = TimeSpan.FromSeconds(10);
        sw.Restart();
        for (var c = 0; c < changes; c++)
        {
            var i = rnd.Next(workloads);
            var t0 = Stopwatch.GetTimestamp();
            var rev = c % 2 == 0
                ? await store.PutAsync(Kinds.WorkloadStatus, BenchCluster.Status(i, nodeCount, healthy: rnd.Next(2) == 0), lease.Id)
                : await store.PutAsync(Kinds.Workloads, BenchCluster.Workload(i, nodeCount, 200, rnd.Next(2) == 0 ? "v1" : "v2"));
            var ack = Stopwatch.GetTimestamp();
            var snap = await watcher.WaitForRevisionAsync(rev).WaitAsync(watchDeadline);
            long pub = 0;
            while (published.TryDequeue(out var p))
                if (p.Rev >= rev && pub == 0) pub = p.Ticks;
            if (pub == 0) pub = Stopwatch.GetTimestamp();
            fromSend.Add(Stopwatch.GetElapsedTime(t0, pub).TotalMilliseconds);
            fromAck.Add(Math.Max(0, Stopwatch.GetElapsedTime(ack, pub).TotalMilliseconds));
        }
        var changeSeconds = sw.Elapsed.TotalSeconds;

        // The in-process cost of applying one change to a 100k snapshot (what "grows with the change" means).
        var applyUs = new List<double>(changes);
        var snapshot = watcher.Current;
        for (var c = 0; c < changes; c++)
        {
            var i = rnd.Next(workloads);
            var change = c % 2 == 0
                ? RegistryChange.Put(Kinds.WorkloadStatus, BenchCluster.Status(i, nodeCount, healthy: rnd.Next(2) == 0), lease.Id)
                : RegistryChange.Put(Kinds.Workloads, BenchCluster.Workload(i, nodeCount, 200, rnd.Next(2) == 0 ? "v1" : "v2"));
            var t0 = Stopwatch.GetTimestamp();
            snapshot = snapshot.Apply([change], snapshot.Revision + 1);
            applyUs.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
        }
        await watcher.DisposeAsync();

        var result = new Dictionary<string, object>
        {
            ["workloads"] = workloads,
            ["changes"] = changes,
            ["load_s"] = Stats.Round(loadSeconds, 1),
            ["full_build_ms"] = Stats.Round(buildMs.Min(), 1),
            ["anchor_raw_range_ms"] = Stats.Round(rawMs.Min(), 1),
            ["anchor_raw_plain_10k_pages_ms"] = Stats.Round(plainMs.Min(), 1),
            ["anchor_raw_tiled_ms"] = Stats.Round(tiledMs.Min(), 1),
            ["full_build_vs_raw_range"] = Stats.Round(buildMs.Min() / rawMs.Min(), 2),
            ["index_build_ms"] = Stats.Round(pureBuildMs, 1),
            ["decode_us_per_value"] = Stats.Round(decodeUsPerValue, 2),
            ["registry_mb"] = Stats.Round(rawBytes / 1e6, 1),
            ["update_from_ack_p50_ms"] = Stats.Round(Stats.Percentile(fromAck, 50)),
            ["update_from_ack_p99_ms"] = Stats.Round(Stats.Percentile(fromAck, 99)),
            ["update_from_send_p50_ms"] = Stats.Round(Stats.Percentile(fromSend, 50)),
            ["update_from_send_p99_ms"] = Stats.Round(Stats.Percentile(fromSend, 99)),
            ["apply_p50_us"] = Stats.Round(Stats.Percentile(applyUs, 50), 1),
            ["apply_p99_us"] = Stats.Round(Stats.Percentile(applyUs, 99), 1),
            ["changes_per_s"] = Stats.Round(changes / changeSeconds, 0),
            ["bytes_per_workload"] = bytesPerWorkload,
            ["targets_met"] = buildMs.Min() / rawMs.Min() <= 1.1 && Stats.Percentile(fromAck, 99) < 5 && bytesPerWorkload < 1024,
        };
        Console.WriteLine("RESULT registry " + JsonSerializer.Serialize(result));
        return 0;
    }

    private static async Task RawRangeAsync(
        EtcdConnection conn, string prefix, Action<Mvccpb.KeyValue> onKv, long pageSize)
    {
        var start = ByteString.CopyFromUtf8(prefix);
        var end = ByteString.CopyFrom(RegistryKeys.RangeEnd(start.Span));
        long revision = 0;
        while (true)
        {
            var resp = await conn.KV.RangeAsync(new RangeRequest { Key = start, RangeEnd = end, Limit = pageSize, Revision = revision });
            if (revision == 0) revision = resp.Header.Revision;
            foreach (var kv in resp.Kvs) onKv(kv);
            if (!resp.More) return;
            start = ByteString.CopyFrom([.. resp.Kvs[^1].Key.ToByteArray(), 0]);
        }
    }

}
