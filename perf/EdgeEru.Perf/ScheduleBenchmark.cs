using System.Diagnostics;
using System.Text.Json;
using EdgeEru.Core.Scheduling;

namespace EdgeEru.Perf;

/// <summary>
/// schedule: plan 1,000,000 instances over 5,000 simulated nodes with the pure scheduler, as the Deployer
/// uses it (a view of each candidate's free resources and the app's instances on it, <see cref="Scheduler.Place"/>,
/// then per placed instance a CPU plan when bound and the usage taken), no Docker, no etcd. A seeded mix of
/// deploy requests: many apps, counts 1–500, memory requests, some CPU-bound, every strategy, some limited to
/// one zone of nodes. Anchor: Nomad's C1M (1M containers on 5,000 hosts in under 300 s).
/// </summary>
internal static class ScheduleBenchmark
{
    private const double C1mSeconds = 300;
    private const long MiB = 1L << 20, GiB = 1L << 30;
    private const int Zones = 20;

    /// <summary>Zones 0–3 are the batch pool DRAINED packs full; FILL and EACH go to the others.</summary>
    private const int BatchZones = 4;

    /// <summary>Share of new apps that bind CPUs in the first pass (the mix as issue 20 measured it).</summary>
    private const double DefaultCpuBind = 0.08;

    /// <summary>The second pass: the same mix with this share of apps (hence of requests) binding CPUs.</summary>
    private const double HeavyCpuBind = 0.30;

    private const int WarmUpInstances = 50_000;

    /// <summary>Placements per second each pass must reach (issue 20).</summary>
    private const double TargetPlacementsPerS = 300_000;

    public static Task<int> RunAsync(string[] args)
    {
        var nodeCount = BenchCluster.Arg(args, "--nodes", 5000);
        var target = BenchCluster.Arg(args, "--instances", 1_000_000);
        var seed = BenchCluster.Arg(args, "--seed", 1);

        // Untimed: a short plan on another cluster, so that both passes time the JIT's optimized code (eru-core
        // plans for days), not its first tier.
        Console.Error.WriteLine($"warm-up: {WarmUpInstances:N0} instances, {HeavyCpuBind:P0} of apps bind CPUs");
        Pass(nodeCount, Math.Min(target, WarmUpInstances), seed + 1, HeavyCpuBind);
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        Console.Error.WriteLine($"pass 1: {DefaultCpuBind:P0} of apps bind CPUs");
        var mix = Pass(nodeCount, target, seed, DefaultCpuBind);
        Console.Error.WriteLine($"pass 2: {HeavyCpuBind:P0} of apps bind CPUs");
        var heavy = Pass(nodeCount, target, seed, HeavyCpuBind);

        var report = new Dictionary<string, object>
        {
            ["nodes"] = nodeCount,
            ["instances"] = mix.Placed,
            ["requests"] = mix.Requests,
            ["refused_requests"] = mix.Refused,
            ["bound_instances"] = mix.BoundInstances,
            ["bound_requests"] = mix.BoundRequests,
            ["planning_s"] = Stats.Round(mix.Seconds, 2),
            ["view_s"] = Stats.Round(mix.ViewS, 2),
            ["place_s"] = Stats.Round(mix.PlaceS, 2),
            ["apply_s"] = Stats.Round(mix.ApplyS, 2),
            ["placements_per_s"] = Math.Round(mix.PerSecond),
            ["request_p50_ms"] = Stats.Round(Stats.Percentile(mix.RequestMs, 50)),
            ["request_p99_ms"] = Stats.Round(Stats.Percentile(mix.RequestMs, 99)),
            ["place_p50_ms"] = Stats.Round(Stats.Percentile(mix.PlaceMs, 50)),
            ["place_p99_ms"] = Stats.Round(Stats.Percentile(mix.PlaceMs, 99)),
            ["memory_used_percent"] = Stats.Round(mix.MemoryUsedPercent, 1),
            ["pieces_used_percent"] = Stats.Round(mix.PiecesUsedPercent, 1),
            // The same plan with 30% of apps binding CPUs (a fresh cluster, the same seed).
            ["instances_cpu_bind_30"] = heavy.Placed,
            ["requests_cpu_bind_30"] = heavy.Requests,
            ["refused_requests_cpu_bind_30"] = heavy.Refused,
            ["bound_instances_cpu_bind_30"] = heavy.BoundInstances,
            ["bound_requests_cpu_bind_30"] = heavy.BoundRequests,
            ["planning_s_cpu_bind_30"] = Stats.Round(heavy.Seconds, 2),
            ["place_s_cpu_bind_30"] = Stats.Round(heavy.PlaceS, 2),
            ["placements_per_s_cpu_bind_30"] = Math.Round(heavy.PerSecond),
            ["request_p99_ms_cpu_bind_30"] = Stats.Round(Stats.Percentile(heavy.RequestMs, 99)),
            ["pieces_used_percent_cpu_bind_30"] = Stats.Round(heavy.PiecesUsedPercent, 1),
            // Both passes: nodes whose recorded instances exceed them, instances the apply step found no room for.
            ["overcommitted_nodes"] = mix.Overcommitted + heavy.Overcommitted,
            ["lost_at_apply"] = mix.LostAtApply + heavy.LostAtApply,
            ["anchor_c1m_s"] = C1mSeconds,
            ["speedup_vs_c1m"] = Stats.Round(C1mSeconds / mix.Seconds, 1),
            ["targets_met"] = mix.PerSecond >= TargetPlacementsPerS && heavy.PerSecond >= TargetPlacementsPerS
                && C1mSeconds / mix.Seconds >= 10 && mix.Overcommitted + heavy.Overcommitted == 0,
            // On a shared machine the process may get less than a core: its CPU time shows how much it had.
            ["process_cpu_s"] = Stats.Round(Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpu0, 2),
        };
        Console.WriteLine("RESULT schedule " + JsonSerializer.Serialize(report));
        var ok = mix.Overcommitted + heavy.Overcommitted == 0 && mix.LostAtApply + heavy.LostAtApply == 0;
        return Task.FromResult(ok ? 0 : 1);
    }

    private sealed record PassFigures(
        long Placed, int Requests, int Refused, int BoundInstances, int BoundRequests, double ViewS, double PlaceS, double ApplyS,
        List<double> RequestMs, List<double> PlaceMs, double MemoryUsedPercent, double PiecesUsedPercent, int Overcommitted,
        int LostAtApply)
    {
        public double Seconds => ViewS + PlaceS + ApplyS;

        public double PerSecond => Placed / Seconds;
    }

    /// <summary>Plans <paramref name="target"/> instances on a fresh cluster; <paramref name="cpuBind"/> of new apps bind CPUs.</summary>
    private static PassFigures Pass(int nodeCount, int target, int seed, double cpuBind)
    {
        var cluster = new SimCluster(nodeCount);
        var rnd = new Random(seed);
        var apps = new List<App>();

        var requestMs = new List<double>();
        var placeMs = new List<double>();
        double viewS = 0, placeS = 0, applyS = 0;
        var byStrategy = Enum.GetValues<Strategy>()
            .ToDictionary(s => s, _ => (Requests: 0, Instances: 0L, Seconds: 0.0, BoundSeconds: 0.0));
        var refused = 0;
        var boundRequests = 0;
        var refusedBy = new Dictionary<Strategy, int>();
        var placed = 0L;
        var lostAtApply = 0;
        var progress = Stopwatch.StartNew();
        var total = Stopwatch.StartNew();
        while (placed < target)
        {
            var (app, request, zone) = NextRequest(rnd, apps, target - placed, cpuBind);
            if (request.Resources.CpuBind) boundRequests++;
            var t0 = Stopwatch.GetTimestamp();
            var view = cluster.View(app.Id, zone);
            var t1 = Stopwatch.GetTimestamp();
            var result = Scheduler.Place(view, request);
            var t2 = Stopwatch.GetTimestamp();
            if (result.Ok) lostAtApply += cluster.Apply(app.Id, request.Resources, result.PerNode);
            var t3 = Stopwatch.GetTimestamp();
            viewS += Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
            placeS += Stopwatch.GetElapsedTime(t1, t2).TotalSeconds;
            applyS += Stopwatch.GetElapsedTime(t2, t3).TotalSeconds;
            requestMs.Add(Stopwatch.GetElapsedTime(t0, t3).TotalMilliseconds);
            placeMs.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            if (!result.Ok)
            {
                refused++;
                refusedBy[request.Strategy] = refusedBy.GetValueOrDefault(request.Strategy) + 1;
                continue;
            }
            placed += result.Total;
            var s = byStrategy[request.Strategy];
            var took = Stopwatch.GetElapsedTime(t1, t2).TotalSeconds;
            byStrategy[request.Strategy] =
                (s.Requests + 1, s.Instances + result.Total, s.Seconds + took, s.BoundSeconds + (request.Resources.CpuBind ? took : 0));
            if (progress.Elapsed.TotalSeconds >= 5)
            {
                Console.Error.WriteLine($"  {placed:N0} instances in {requestMs.Count:N0} requests, {total.Elapsed.TotalSeconds:F0} s " +
                    $"(view {viewS:F1} s, place {placeS:F1} s, apply {applyS:F1} s)");
                progress.Restart();
            }
        }
        var seconds = viewS + placeS + applyS;
        var overcommitted = cluster.Overcommitted();
        Console.Error.WriteLine($"placed {placed:N0} instances on {nodeCount:N0} nodes with {requestMs.Count:N0} requests " +
            $"({refused} refused; {boundRequests:N0} requests and {cluster.BoundInstances:N0} instances bind CPUs) " +
            $"in {seconds:F2} s of planning " +
            $"(view {viewS:F2} s, place {placeS:F2} s, apply {applyS:F2} s; {total.Elapsed.TotalSeconds:F1} s wall)");
        foreach (var (strategy, (requests, instances, took, bound)) in byStrategy)
            Console.Error.WriteLine($"  {strategy}: {requests:N0} requests, {instances:N0} instances, place {took:F2} s " +
                $"({bound:F2} s of it CPU-bound requests), {refusedBy.GetValueOrDefault(strategy)} refused");
        Console.Error.WriteLine(overcommitted.Count == 0
            ? $"check: no node overcommitted (memory and every core's pieces recomputed from the {placed:N0} recorded instances)"
            : $"check: OVERCOMMITTED {overcommitted.Count} node(s): {string.Join("; ", overcommitted.Take(5))}");
        return new PassFigures(placed, requestMs.Count, refused, cluster.BoundInstances, boundRequests, viewS, placeS, applyS,
            requestMs, placeMs, cluster.MemoryUsedPercent, cluster.PiecesUsedPercent, overcommitted.Count, lostAtApply);
    }

    private sealed record App(int Id, ResourceRequest Resources);

    private static readonly long[] Memories = [64 * MiB, 128 * MiB, 128 * MiB, 256 * MiB, 256 * MiB, 512 * MiB, 512 * MiB, 1 * GiB];

    /// <summary>
    /// The next deploy: 70% a new app, else more of an existing one with its resources. AUTO 60%, GLOBAL 17%,
    /// DRAINED 13% with log-uniform counts 1–500 (20% of AUTO and GLOBAL in one zone, DRAINED always in
    /// one zone of the batch pool); FILL 5% (up to 1–2 per node) and EACH 5% (one more per node), daemon-like,
    /// over one zone outside the pool, EACH now and then (2%) over every node. A share of apps (8%, or 30% in the
    /// second pass) bind CPUs (0.25–2), the others ask a CFS quota (0.25–2); memory requests 64 MiB–1 GiB.
    /// The last deploy is an AUTO of exactly what is left.
    /// </summary>
    private static (App App, PlacementRequest Request, int Zone) NextRequest(Random rnd, List<App> apps, long left, double cpuBind)
    {
        App app;
        if (apps.Count == 0 || rnd.NextDouble() < 0.7)
        {
            var bind = rnd.NextDouble() < cpuBind;
            var cpu = rnd.Next(1, 9) * 0.25;
            app = new App(apps.Count, new ResourceRequest { Memory = Memories[rnd.Next(Memories.Length)], Cpu = cpu, CpuBind = bind });
            apps.Add(app);
        }
        else app = apps[rnd.Next(apps.Count)];
        if (left <= 500) return (app, new PlacementRequest(app.Resources, (int)left, Strategy.Auto), -1);

        // Near the end only deploys of at most 500 (EACH over every node would overshoot the target).
        var roll = left <= 20_000 ? rnd.NextDouble() * 0.9 : rnd.NextDouble();
        var count = (int)Math.Round(Math.Exp(rnd.NextDouble() * Math.Log(500)));
        var zone = rnd.NextDouble() < 0.2 ? rnd.Next(Zones) : -1;
        return roll switch
        {
            < 0.60 => (app, new PlacementRequest(app.Resources, count, Strategy.Auto, rnd.NextDouble() < 0.1 ? rnd.Next(1, 4) : 0), zone),
            < 0.77 => (app, new PlacementRequest(app.Resources, count, Strategy.Global), zone),
            < 0.90 => (app, new PlacementRequest(app.Resources, count, Strategy.Drained), rnd.Next(BatchZones)),
            < 0.95 => (app, new PlacementRequest(app.Resources with { Memory = 64 * MiB }, rnd.Next(1, 3), Strategy.Fill),
                rnd.Next(BatchZones, Zones)),
            _ => (app, new PlacementRequest(app.Resources with { Memory = 64 * MiB }, 1, Strategy.Each),
                rnd.NextDouble() < 0.02 ? -1 : rnd.Next(BatchZones, Zones)),
        };
    }

    /// <summary>
    /// The simulated nodes and everything placed on them. Usage is kept per node the way the registry's
    /// view derives it (free memory, free pieces per core, the app's instances per node); every placed
    /// instance is also recorded, so the final check recomputes usage from the records alone.
    /// </summary>
    private sealed class SimCluster
    {
        private readonly string[] _names;
        private readonly int[] _zone;
        private readonly NodeResources[] _free;
        private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
        private readonly Dictionary<int, Dictionary<int, int>> _perApp = [];
        private readonly List<(int Node, long Memory, int CoresFrom, int CoresTo)> _records = [];
        private readonly List<(int Core, int Pieces)> _cores = [];

        public SimCluster(int count)
        {
            _names = new string[count];
            _zone = new int[count];
            _free = new NodeResources[count];
            for (var i = 0; i < count; i++)
            {
                // 60% 32 cores / 128 GiB on two NUMA nodes; 30% 16 cores / 64 GiB oversold twice; 10% 64 cores / 256 GiB on four.
                var (cores, memory, pieces, numa) = (i % 10) switch
                {
                    < 6 => (32, 128 * GiB, 100, 2),
                    < 9 => (16, 64 * GiB, 200, 1),
                    _ => (64, 256 * GiB, 100, 4),
                };
                _names[i] = $"node-{i:D4}";
                _zone[i] = i % Zones;
                _index[_names[i]] = i;
                _free[i] = new NodeResources
                {
                    Name = _names[i],
                    PiecesPerCore = pieces,
                    FreePieces = Enumerable.Repeat(pieces, cores).ToArray(),
                    CoreNuma = numa > 1
                        ? Enumerable.Range(0, cores)
                            .Select(c => (c * numa / cores).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray()
                        : [],
                    FreeMemory = memory,
                    TotalMemory = memory,
                };
            }
        }

        public int BoundInstances { get; private set; }

        /// <summary>The candidates of a deploy of <paramref name="app"/> (in one zone, or all), as NodeUsage.Free gives them.</summary>
        public List<NodeResources> View(int app, int zone)
        {
            _perApp.TryGetValue(app, out var existing);
            var view = new List<NodeResources>(zone < 0 ? _free.Length : _free.Length / Zones + 1);
            for (var i = 0; i < _free.Length; i++)
            {
                if (zone >= 0 && _zone[i] != zone) continue;
                var n = existing is not null && existing.TryGetValue(i, out var e) ? e : 0;
                view.Add(n == 0 ? _free[i] : _free[i] with { Existing = n });
            }
            return view;
        }

        /// <summary>
        /// Takes what each placed instance uses, one after another as the Deployer records them: a CPU plan
        /// against the node's current free pieces when bound. Returns how many found no room (none should).
        /// </summary>
        public int Apply(int app, ResourceRequest r, IReadOnlyDictionary<string, int> perNode)
        {
            if (!_perApp.TryGetValue(app, out var existing)) _perApp[app] = existing = [];
            var lost = 0;
            foreach (var (name, count) in perNode)
            {
                var i = _index[name];
                var node = _free[i];
                var pieces = r.CpuBind ? (int[])node.FreePieces.Clone() : node.FreePieces;
                var memory = node.FreeMemory;
                var placed = 0;
                for (var k = 0; k < count; k++)
                {
                    if (memory < r.Memory || (!r.CpuBind && r.Cpu > pieces.Length))
                    {
                        lost++;
                        continue;
                    }
                    var from = _cores.Count;
                    if (r.CpuBind)
                    {
                        if (CpuPlanner.Plan(pieces, node.CoreNuma, r) is not { } plan)
                        {
                            lost++;
                            continue;
                        }
                        foreach (var (core, p) in plan.Cores)
                        {
                            pieces[core] -= p;
                            _cores.Add((core, p));
                        }
                        BoundInstances++;
                    }
                    memory -= r.Memory;
                    _records.Add((i, r.Memory, from, _cores.Count));
                    placed++;
                }
                _free[i] = node with { FreePieces = pieces, FreeMemory = memory };
                existing[i] = existing.GetValueOrDefault(i) + placed;
            }
            return lost;
        }

        public double MemoryUsedPercent =>
            100.0 * _free.Sum(n => (double)(n.TotalMemory - n.FreeMemory)) / _free.Sum(n => (double)n.TotalMemory);

        public double PiecesUsedPercent =>
            100.0 * _free.Sum(n => (double)n.CpuCores * n.PiecesPerCore - n.FreePieces.Sum())
            / _free.Sum(n => (double)n.CpuCores * n.PiecesPerCore);

        /// <summary>Nodes whose recorded instances take more memory, or more pieces of a core, than the node has.</summary>
        public List<string> Overcommitted()
        {
            var memory = new long[_free.Length];
            var pieces = _free.Select(n => new int[n.CpuCores]).ToArray();
            foreach (var (node, mem, from, to) in _records)
            {
                memory[node] += mem;
                for (var c = from; c < to; c++) pieces[node][_cores[c].Core] += _cores[c].Pieces;
            }
            var bad = new List<string>();
            for (var i = 0; i < _free.Length; i++)
            {
                var n = _free[i];
                if (memory[i] > n.TotalMemory) bad.Add($"{n.Name}: memory {memory[i]} > {n.TotalMemory}");
                for (var c = 0; c < n.CpuCores; c++)
                    if (pieces[i][c] > n.PiecesPerCore) bad.Add($"{n.Name}: core {c} has {pieces[i][c]} of {n.PiecesPerCore} pieces");
                if (n.TotalMemory - memory[i] != n.FreeMemory) bad.Add($"{n.Name}: records and usage disagree on memory");
            }
            return bad;
        }
    }
}
