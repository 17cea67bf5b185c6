using System.Collections.Concurrent;
using CsCheck;
using EdgeEru.Core.Deploy;
using EdgeEru.Docker;
using EdgeEru.Core.Scheduling;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Properties of allocation (CsCheck): (a) pure, sequences of placements applied to workload records on
/// random nodes; (b) concurrent deploys racing through the Deployer's fence transactions against a real
/// etcd, with random delays injected at its yield points. (b) creates no containers (the deploy's
/// <see cref="IDockerEngine"/> seam), so it can run many cases; DeployerTests races real containers.
/// </summary>
public sealed class AllocationPropertyTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IDisposable
{
    private const long MiB = 1L << 20;
    private readonly ILoggerFactory _logs =
        LoggerFactory.Create(b => b.AddProvider(new XunitLoggerProvider(output)).SetMinimumLevel(LogLevel.Warning));

    /// <summary>A node: cores, share pieces per core (100-300: oversell), memory, and a NUMA layout.</summary>
    internal sealed record NodeGen(string Name, int Cores, int Pieces, long Memory, int NumaNodes, bool Interleaved)
    {
        public Node ToNode(string pod) => new()
        {
            Name = Name, Pod = pod, Endpoint = new DockerEndpoint { Address = "unix:///nonexistent/" + Name },
            Capacity = new NodeCapacity
            {
                CpuCores = Cores, PiecesPerCore = Pieces, MemoryBytes = Memory,
                Numa = NumaNodes <= 1 ? [] : [.. Enumerable.Range(0, NumaNodes).Select(n => new NumaNode
                {
                    Id = n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Cpus = [.. Enumerable.Range(0, Cores).Where(c => (Interleaved ? c % NumaNodes : c * NumaNodes / Cores) == n)],
                })],
            },
        };
    }

    internal sealed record RequestGen(string App, long Memory, double Cpu, bool Bind, Strategy Strategy, int Count, int PerNodeLimit)
    {
        public ResourceRequest Resources => new() { Memory = Memory, Cpu = Cpu, CpuBind = Bind };
    }

    private static readonly Gen<NodeGen[]> Nodes =
        (from cores in Gen.Int[1, 8]
         from pieces in Gen.Int[100, 300]
         from memory in Gen.Int[1, 32]
         from numa in Gen.Int[1, 4]
         from interleaved in Gen.Bool
         select (cores, pieces, memory * 128 * MiB, numa, interleaved)).Array[1, 4]
        .Select(a => a.Select((n, i) =>
            new NodeGen($"n{i}", n.cores, n.pieces, n.Item3, Math.Min(n.numa, n.cores), n.interleaved)).ToArray());

    private static readonly Gen<RequestGen> Request =
        from app in Gen.Int[0, 2]
        from memory in Gen.Int[0, 12]
        from cpu in Gen.Int[1, 300]
        from bind in Gen.Bool
        from strategy in Gen.Enum<Strategy>()
        from count in Gen.Int[1, 6]
        from limit in Gen.Int[0, 3]
        select new RequestGen($"app{app}", memory * 64 * MiB, cpu / 100.0, bind, strategy, count, limit);

    /// <summary>
    /// (a) Placements applied one after another to workload records (the allocator's own steps:
    /// <see cref="NodeUsage.Free"/>, <see cref="Scheduler.Place"/>, one <see cref="CpuPlanner.Plan"/> per
    /// bound instance): usage never exceeds capacity, every placed instance lands exactly once, a bound
    /// instance gets distinct valid cores, and a refusal only happens when capacity really is short.
    /// </summary>
    [Fact]
    public void Sequences_of_placements_never_overcommit_and_place_each_instance_once()
    {
        Gen.Select(Nodes, Request.Array[1, 10]).Sample((nodeGens, requests) =>
        {
            var nodes = nodeGens.Select(n => n.ToNode("p")).ToList();
            var records = new List<Workload>();
            var serial = 0;
            foreach (var req in requests)
            {
                var free = nodes.Select(n => NodeUsage.Free(n, records.Where(w => w.Node == n.Name), req.App)).ToList();
                var result = Scheduler.Place(free, new PlacementRequest(req.Resources, req.Count, req.Strategy, req.PerNodeLimit));
                var capacity = free.ToDictionary(f => f.Name, f =>
                {
                    var c = Scheduler.Capacity(f, req.Resources);
                    return req.PerNodeLimit > 0 ? Math.Max(0, Math.Min(c, req.PerNodeLimit - f.Existing)) : c;
                });
                if (!result.Ok)
                {
                    // Refused only when the room is really not there.
                    var wanted = free.ToDictionary(f => f.Name, f => req.Strategy switch
                    {
                        Strategy.Each => req.Count,
                        Strategy.Fill => Math.Max(0, req.Count - f.Existing),
                        _ => 0,
                    });
                    if (req.Strategy is Strategy.Each or Strategy.Fill) Assert.Contains(free, f => wanted[f.Name] > capacity[f.Name]);
                    else Assert.True(capacity.Values.Sum() < req.Count,
                        $"refused {req} although capacity is {capacity.Values.Sum()}: {result.Error}");
                    continue;
                }
                var expected = req.Strategy switch
                {
                    Strategy.Each => req.Count * nodes.Count,
                    Strategy.Fill => free.Sum(f => Math.Max(0, req.Count - f.Existing)),
                    _ => req.Count,
                };
                Assert.Equal(expected, result.Total);
                foreach (var (name, placed) in result.PerNode)
                {
                    Assert.True(placed <= capacity[name], $"{name}: {placed} placed, capacity {capacity[name]}");
                    var node = nodes.Single(n => n.Name == name);
                    for (var i = 0; i < placed; i++)
                    {
                        // Fresh usage per instance, as the allocator reads it under the fence.
                        var now = NodeUsage.Free(node, records.Where(w => w.Node == name), req.App);
                        CpuPlan? plan = null;
                        if (req.Bind)
                        {
                            plan = CpuPlanner.Plan(now.FreePieces, now.CoreNuma, req.Resources);
                            Assert.True(plan is not null, $"{name} promised {placed} bound instances of {req.Cpu}, " +
                                $"plan {i + 1} found no cores (free [{string.Join(",", now.FreePieces)}])");
                        }
                        records.Add(new Workload
                        {
                            Id = $"w{serial++}", Name = $"w{serial}", App = req.App, Entrypoint = "e", Ident = "i", Pod = "p",
                            Node = name, Image = "x",
                            Resources = new ResourceAllocation
                            {
                                MemoryRequestBytes = req.Memory, MemoryLimitBytes = req.Memory, CpuRequest = req.Cpu, CpuLimit = req.Cpu,
                                CpuBind = plan is null
                                    ? []
                                    : [.. plan.Cores.Select(c => new CpuBinding { Core = c.Core, Pieces = c.Pieces })],
                                NumaNode = plan?.Numa,
                            },
                        });
                    }
                }
                AssertWithinCapacity(nodes, records);
            }
            Assert.Equal(records.Count, records.Select(r => r.Id).Distinct().Count()); // each instance exactly once
        }, iter: 300, threads: 1, print: t => $"{string.Join(" ", t.Item1)} | {string.Join(" ", t.Item2)}");
    }

    /// <summary>
    /// Memory and every core's pieces within capacity; bound workloads on distinct, existing cores; NUMA-local plans really local.
    /// </summary>
    private static void AssertWithinCapacity(IReadOnlyList<Node> nodes, IReadOnlyList<Workload> records)
    {
        foreach (var node in nodes)
        {
            var on = records.Where(r => r.Node == node.Name).ToList();
            var cap = node.Capacity;
            Assert.True(on.Sum(r => r.Resources.MemoryRequestBytes) <= cap.MemoryBytes, $"{node.Name}: memory overcommitted");
            var pieces = new int[cap.CpuCores];
            foreach (var r in on)
            {
                var cores = r.Resources.CpuBind.Select(b => b.Core).ToList();
                Assert.Equal(cores.Count, cores.Distinct().Count());
                var expectedCores = r.Resources.CpuBind.Length == 0
                    ? 0
                    : (int)Math.Floor(r.Resources.CpuRequest + 1e-9)
                        + (Math.Abs(r.Resources.CpuRequest - Math.Round(r.Resources.CpuRequest)) > 1e-9 ? 1 : 0);
                Assert.Equal(expectedCores, cores.Count);
                Assert.Equal((int)Math.Round(r.Resources.CpuBind.Length == 0 ? 0 : r.Resources.CpuRequest * 100),
                    r.Resources.CpuBind.Sum(b => b.Pieces));
                foreach (var b in r.Resources.CpuBind)
                {
                    Assert.InRange(b.Core, 0, cap.CpuCores - 1);
                    Assert.InRange(b.Pieces, 1, 100);
                    pieces[b.Core] += b.Pieces;
                }
                if (r.Resources.NumaNode is { } numa)
                    Assert.All(cores, c => Assert.Contains(c, cap.Numa.Single(n => n.Id == numa).Cpus));
            }
            for (var c = 0; c < pieces.Length; c++)
                Assert.True(pieces[c] <= cap.PiecesPerCore, $"{node.Name} core {c}: {pieces[c]} of {cap.PiecesPerCore} pieces");
        }
    }

    /// <summary>Deploys that create no containers: ids are handed out and tracked, so leaks and orphans show.</summary>
    private sealed class NoContainers(
        ConcurrentDictionary<string, string> live, ConcurrentDictionary<string, (long Memory, string? Cpuset)> applied, string node)
        : IDockerEngine
    {
        /// <summary>What docker update would have set last: the test compares it with the record.</summary>
        public async Task UpdateResourcesAsync(
            string id, long memoryLimit, double cpuQuota, string? cpuset, string? cpusetMems, CancellationToken ct = default)
        {
            if (!live.ContainsKey(id)) throw new InvalidOperationException($"no container {id}");
            await Task.Delay(Random.Shared.Next(0, 3), ct); // an engine's latency: concurrent updates may land in any order
            applied[id] = (memoryLimit, cpuset);
        }

        public Task EnsureImageAsync(string image, string? auth, CancellationToken ct = default) => Task.CompletedTask;

        public Task<string> CreateAndStartAsync(ContainerSpec spec, CancellationToken ct = default)
        {
            var id = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
            Assert.True(live.TryAdd(id, node));
            return Task.FromResult(id);
        }

        public Task<string> CreateAsync(ContainerSpec spec, CancellationToken ct = default) => CreateAndStartAsync(spec, ct);

        public Task<bool> ImageExistsAsync(string image, CancellationToken ct = default) => Task.FromResult(true);

        public Task EnsureVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default) =>
            throw new NotSupportedException("no volumes in these specs");

        public Task<bool> VolumeExistsAsync(string name, CancellationToken ct = default) =>
            throw new NotSupportedException("no volumes in these specs");

        public Task<IReadOnlySet<string>> EnsureRoutedNetworkAsync(
            string name, string subnet, string gateway, IReadOnlyDictionary<string, string> labels, CancellationToken ct = default) =>
            throw new NotSupportedException("no routed networks in these specs");

        public Task<bool> RemoveVolumeAsync(string name, CancellationToken ct = default) =>
            throw new NotSupportedException("no volumes in these specs");

        public Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct = default) =>
            throw new NotSupportedException("no hooks in these specs");

        public Task<ContainerState?> InspectAsync(string id, CancellationToken ct = default) =>
            Task.FromResult<ContainerState?>(live.ContainsKey(id)
                ? new ContainerState(id, id, true, new Dictionary<string, string>(), 0, "", 0, new Dictionary<string, string>())
                : null);

        public Task<bool> RemoveAsync(string id, TimeSpan stopTimeout, CancellationToken ct = default) =>
            Task.FromResult(live.TryRemove(id, out _));

        public void Dispose()
        {
        }
    }

    /// <summary>A realloc of some existing workload (picked when it runs).</summary>
    internal sealed record ReallocGen(int Pick, int DelayMs, long Memory, double Cpu, bool Bind, bool Twin)
    {
        /// <summary>One realloc, or with <see cref="Twin"/> two different ones of the same workload at once.</summary>
        public ReallocSpec[] Specs => Twin
            ? [new() { MemoryRequest = Memory, Cpu = Cpu, CpuBind = Bind },
                new() { MemoryRequest = Memory / 2 + 64 * MiB, Cpu = Math.Max(0.01, Math.Round(Cpu / 2, 2)), CpuBind = !Bind }]
            : [new() { MemoryRequest = Memory, Cpu = Cpu, CpuBind = Bind }];
    }

    private static readonly Gen<ReallocGen> Reallocs =
        from pick in Gen.Int[0, 1000]
        from delay in Gen.Int[0, 20]
        from memory in Gen.Int[0, 12]
        from cpu in Gen.Int[1, 300]
        from bind in Gen.Bool
        from twin in Gen.Bool
        select new ReallocGen(pick, delay, memory * 64 * MiB, cpu / 100.0, bind, twin);

    /// <summary>
    /// (b) Several deploys at once over a few nodes of one pod, in a fresh registry per case, with random
    /// delays or yields at the allocation's yield points (half the cases read usage through a watcher):
    /// in the final registry no node's memory or core is overcommitted, every planned instance is either
    /// recorded once or reported failed, every failure left nothing behind, and records and "containers"
    /// are the same set. Reallocs of random existing workloads (the same one twice, at times) race them:
    /// they too never overcommit, and what was last applied to a "container" is what its record says.
    /// </summary>
    [Fact]
    public async Task Racing_deploys_against_etcd_never_overcommit_and_record_every_instance_once()
    {
        var gen = Gen.Select(Nodes.Select(n => n.Take(3).ToArray()), Gen.Select(Request.Array[2, 5], Reallocs.Array[0, 4]),
            Gen.Int[0, int.MaxValue], Gen.Bool);
        var (allocations, fenceReads, reallocations) = (0, 0, 0);
        await gen.SampleAsync(async (nodeGens, work, seed, useWatcher) =>
        {
            var (requests, reallocs) = work;
            var prefix = EtcdFixture.NewPrefix();
            using var conn = new EtcdConnection(etcd.Options(prefix));
            var store = new RegistryStore(conn);
            await store.PutAsync(Kinds.Pods, new Pod { Name = "p" });
            var nodes = nodeGens.Select(n => n.ToNode("p")).ToList();
            foreach (var n in nodes)
            {
                await store.PutAsync(Kinds.Nodes, n);
                await store.PutAsync(Kinds.NodeStatus, new NodeStatus { Node = n.Name, HeartbeatAt = DateTimeOffset.UtcNow });
            }
            await using var watcher = useWatcher ? new RegistryWatcher(conn, _logs.CreateLogger<RegistryWatcher>()) : null;
            watcher?.Start();

            var live = new ConcurrentDictionary<string, string>();
            var applied = new ConcurrentDictionary<string, (long Memory, string? Cpuset)>();
            var rnd = new Random(seed);
            var deployer = new Deployer(
                store, _ => throw new InvalidOperationException("no engines here"), _logs.CreateLogger<Deployer>(), watcher)
            {
                Hosts = n => new NoContainers(live, applied, n.Name),
                Interleave = async (point, ct) =>
                {
                    if (point == "fence-read") Interlocked.Increment(ref fenceReads);
                    int pick;
                    lock (rnd) pick = rnd.Next(4);
                    if (pick == 0) await Task.Yield();
                    else if (pick == 1) await Task.Delay(pick, ct);
                    else if (pick == 2) await Task.Delay(Random.Shared.Next(1, 6), ct);
                },
            };
            var planned = requests.Select(_ => new ConcurrentDictionary<string, int>()).ToArray();
            var reallocated = Task.WhenAll(reallocs.Select(r => Task.Run<IReadOnlyList<InstanceOutcome>>(async () =>
            {
                await Task.Delay(r.DelayMs);
                var existing = (await store.ListAsync(Kinds.Workloads)).Items;
                if (existing.Count == 0) return [];
                var id = existing[r.Pick % existing.Count].Value.Id;
                return (await Task.WhenAll(r.Specs.Select(spec => Task.Run(() => deployer.ReallocAsync([id], spec)))))
                    .SelectMany(o => o).ToList();
            })));
            var results = await Task.WhenAll(requests.Select((r, i) => Task.Run(() => deployer.DeployAsync(new DeploySpec
            {
                App = r.App, Entrypoint = "e", Image = "x", Pod = "p", Count = r.Count, Strategy = r.Strategy,
                PerNodeLimit = r.PerNodeLimit,
                MemoryRequest = r.Memory, MemoryLimit = r.Memory, Cpu = r.Cpu, CpuBind = r.Bind,
            }, p =>
            {
                foreach (var (node, count) in p.Planned ?? new Dictionary<string, int>()) planned[i][node] = count;
            }))));

            var reallocOutcomes = (await reallocated).SelectMany(o => o).ToList();
            var records = (await store.ListAsync(Kinds.Workloads)).Items.Select(w => w.Value).ToList();
            AssertWithinCapacity(nodes, records);
            Assert.All(reallocOutcomes, o =>
                Assert.True(o.Error is null || o.Error.StartsWith("does not fit on ", StringComparison.Ordinal), o.Error));
            foreach (var r in records.Where(r => applied.ContainsKey(r.Id)))
            {
                var (memory, cpuset) = applied[r.Id];
                Assert.Equal(r.Resources.MemoryLimitBytes, memory);
                Assert.Equal(r.Resources.CpuBind.Length > 0 ? DockerEngine.Cpuset(r.Resources.CpuBind.Select(b => b.Core)) : null, cpuset);
            }
            Interlocked.Add(ref reallocations, reallocOutcomes.Count(o => o.Error is null));
            for (var i = 0; i < results.Length; i++)
            {
                var result = results[i];
                if (result.Refused != RefusalKind.None)
                {
                    Assert.Empty(result.Instances); // refused before anything was created
                    continue;
                }
                // Each planned instance has exactly one outcome on its node: recorded, or failed and gone.
                foreach (var (node, count) in planned[i]) Assert.Equal(count, result.Instances.Count(o => o.Node == node));
                Assert.Equal(planned[i].Values.Sum(), result.Instances.Count);
                foreach (var o in result.Instances)
                {
                    if (o.Error is null) Assert.Equal(o.Node, Assert.Single(records, w => w.Id == o.WorkloadId).Node);
                    else Assert.Null(o.WorkloadId);
                }
            }
            var created = results.SelectMany(r => r.Instances).Where(o => o.Error is null).Select(o => o.WorkloadId!).Order().ToList();
            Assert.Equal(created, records.Select(r => r.Id).Order());        // no record without a successful allocation
            Assert.Equal(created, live.Keys.Order());                          // no container without a record
            Assert.All(records, r => Assert.Equal(live[r.Id], r.Node));
            Interlocked.Add(ref allocations, results.Sum(r => r.Instances.Count));
        }, iter: 100, threads: 1, print: t => $"{string.Join(" ", t.Item1)} | {string.Join(" ", t.Item2.Item1)} | " +
            $"{string.Join(" ", t.Item2.Item2)} | seed {t.Item3} watcher {t.Item4}");
        // The races were real: some allocations found their node's fence moved and went round again.
        output.WriteLine($"{allocations} allocations, {fenceReads} fence reads, {reallocations} reallocations");
        Assert.True(reallocations > 0, "no realloc ever went through");
        Assert.True(fenceReads > allocations, $"no allocation ever retried ({allocations} allocations, {fenceReads} fence reads)");
    }

    public void Dispose() => _logs.Dispose();
}
