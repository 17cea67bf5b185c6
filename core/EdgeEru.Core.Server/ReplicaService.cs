using EdgeEru.Core.Deploy;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using Prometheus;

namespace EdgeEru.Core.Server;

/// <summary>Who this eru-core replica is: its id (Core:ReplicaId, else a random one) and the URLs clients reach it at.</summary>
public sealed record CoreIdentity(string Id, IReadOnlyList<string> Urls);

/// <summary>
/// This replica in the registry and its reaper: <c>cores/{id}</c> under a lease (re-granted when lost), so that
/// clients find every replica and other replicas know whose intents are orphaned; then, every
/// <c>Core:ReapInterval</c>, <see cref="Deployer.ReapAsync"/>. Two replicas reaping at once is safe: every
/// step is a guarded transaction or an idempotent Docker call.
/// </summary>
public sealed class ReplicaService(
    RegistryStore store, Deployer deployer, CoreIdentity identity, IConfiguration config, ILogger<ReplicaService> log)
    : BackgroundService
{
    private static readonly Counter Reaped = Metrics.CreateCounter("eru_core_reaped_total", "What the reaper finished or removed", "what");
    private static readonly Gauge Replicas = Metrics.CreateGauge("eru_core_replicas", "Core replicas in the registry (this one included)");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var ttl = TimeSpan.FromSeconds(Math.Clamp(config.GetValue("Core:LeaseTtlSeconds", 10), 2, 300));
        var interval = TimeSpan.FromSeconds(Math.Clamp(config.GetValue("Core:ReapIntervalSeconds", 30.0), 0.2, 3600));
        var grace = TimeSpan.FromSeconds(Math.Clamp(config.GetValue("Core:ReapGraceSeconds", 120.0), 0, 86400));
        var memory = new ReapMemory();
        RegistryLease? lease = null;
        var nextReap = DateTime.UtcNow;
        var datacenter = config["Core:Datacenter"];
        if (datacenter is not null && !Names.IsLabel(datacenter))
            throw new WrongDatacenterException($"Core:Datacenter \"{datacenter}\" must be a DNS label (a-z, 0-9, -)");
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (datacenter is not null)
                {
                    await RecordDatacenterAsync(datacenter, stoppingToken);
                    datacenter = null;
                }
                if (lease is null || lease.IsLost)
                {
                    if (lease is not null) await lease.DisposeAsync();
                    lease = await store.GrantLeaseAsync(ttl, ct: stoppingToken);
                    await store.PutAsync(Kinds.Cores, new CoreReplica
                    {
                        Id = identity.Id, Urls = [.. identity.Urls], StartedAt = DateTimeOffset.UtcNow,
                        Version = typeof(ReplicaService).Assembly.GetName().Version?.ToString(),
                    }, lease.Id, stoppingToken);
                    log.LogInformation("core replica {Id} registered (lease {Ttl} s)", identity.Id, ttl.TotalSeconds);
                }
                if (DateTime.UtcNow >= nextReap)
                {
                    nextReap = DateTime.UtcNow + interval;
                    var report = await deployer.ReapAsync(memory, grace, stoppingToken);
                    Reaped.WithLabels("intents").Inc(report.Intents);
                    Reaped.WithLabels("containers").Inc(report.Containers);
                    Reaped.WithLabels("records").Inc(report.Records);
                    Reaped.WithLabels("volumes").Inc(report.Volumes);
                    Replicas.Set((await store.ListAsync(Kinds.Cores, ct: stoppingToken)).Items.Count);
                }
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, interval.TotalMilliseconds)), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not WrongDatacenterException)
            {
                // etcd away, an engine down: said, and tried again; the API keeps serving meanwhile.
                log.LogWarning("core replica {Id}: {Error}; trying again", identity.Id, ex.Message);
                await Task.Delay(1000, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
        if (lease is not null) await lease.DisposeAsync(); // a clean stop: cores/{id} goes at once
    }

    /// <summary>
    /// Names this registry's datacenter (<c>datacenter/{name}</c>) unless it is named already; a registry that names
    /// another one stops this replica: it was pointed at another datacenter's etcd.
    /// </summary>
    private async Task RecordDatacenterAsync(string name, CancellationToken ct)
    {
        var named = (await store.ListAsync(Kinds.Datacenters, ct: ct)).Items.Select(d => d.Value.Name).ToList();
        if (named.Count == 0)
        {
            await store.PutAsync(Kinds.Datacenters, new Datacenter { Name = name, CreatedAt = DateTimeOffset.UtcNow }, ct: ct);
            log.LogInformation("this registry is datacenter {Datacenter}", name);
        }
        else if (!named.SequenceEqual([name]))
            throw new WrongDatacenterException($"Core:Datacenter is {name}, but this registry belongs to datacenter(s) "
                + $"{string.Join(", ", named)}: is Registry:Endpoints another datacenter's etcd?");
    }
}

/// <summary>Core was configured for one datacenter and pointed at another one's registry: it must not write there.</summary>
public sealed class WrongDatacenterException(string message) : Exception(message);
