using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Dev;

/// <summary>
/// An etcd cluster of real members on loopback (each an <see cref="EtcdServer"/>), for the faults a single etcd
/// cannot show: the leader killed, a member frozen, every member restarted. Member i (from 0) is named eru{i+1};
/// ports are consecutive from a base port (client, peer, client, peer…) or free ones when it is 0.
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private EtcdCluster(IReadOnlyList<EtcdServer> members) => Members = members;

    /// <summary>The most members a cluster here has (etcd itself advises no more than seven).</summary>
    public const int MaxMembers = 5;

    public IReadOnlyList<EtcdServer> Members { get; }

    /// <summary>Every member's loopback client URL, comma separated: what Registry:Endpoints takes.</summary>
    public string Endpoints => string.Join(',', Members.Select(m => m.ClientUrl));

    /// <summary>The members' client URLs on one of their extra addresses (e.g. the rig's bridge), comma separated.</summary>
    public string EndpointsOn(string address) => string.Join(',', Members.Select(m => $"http://{address}:{m.ClientPort}"));

    public static async Task<EtcdCluster> StartAsync(int members, int basePort = 0, string? dataDir = null,
        IReadOnlyList<string>? extraClientAddresses = null, ILogger? log = null, CancellationToken ct = default)
    {
        if (members is < 1 or > MaxMembers)
            throw new ArgumentOutOfRangeException(nameof(members), members, $"an etcd cluster here has 1 to {MaxMembers} members");
        var ports = Enumerable.Range(0, members)
            .Select(i => basePort != 0
                ? (Client: basePort + 2 * i, Peer: basePort + 2 * i + 1)
                : (Client: Ports.FreeTcp(), Peer: Ports.FreeTcp()))
            .ToList();
        var names = Enumerable.Range(1, members).Select(i => $"eru{i}").ToList();
        var initial = names.Zip(ports, (n, p) => (n, p.Peer)).ToList();
        var servers = new List<EtcdServer>();
        try
        {
            for (var i = 0; i < members; i++)
                servers.Add(EtcdServer.Create(new EtcdServerOptions
                {
                    Name = names[i], ClientPort = ports[i].Client, PeerPort = ports[i].Peer, InitialCluster = initial,
                    DataDir = dataDir is null ? null : Path.Combine(dataDir, names[i]),
                    ExtraClientAddresses = extraClientAddresses ?? [],
                }, log));
            var cluster = new EtcdCluster(servers);
            await cluster.StartAllAsync(ct);
            return cluster;
        }
        catch
        {
            foreach (var s in servers) await s.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts every member that is not running (all at once: a quorum must be up before any is healthy).</summary>
    public async Task StartAllAsync(CancellationToken ct = default)
    {
        var starting = Members.Where(m => !m.IsRunning).ToList();
        foreach (var m in starting) m.Spawn();
        await Task.WhenAll(starting.Select(m => m.WaitHealthyAsync(ct)));
    }

    /// <summary>Stops every member (SIGKILL with <paramref name="kill"/>), keeping their data.</summary>
    public Task StopAllAsync(bool kill = false) => Task.WhenAll(Members.Select(m => m.StopAsync(kill)));

    /// <summary>The index of the member that is leader now, asked of the running members; -1 when none knows one.</summary>
    public Task<int> LeaderAsync(CancellationToken ct = default) =>
        LeaderAsync([.. Members.Select(m => m.IsRunning ? m.ClientUrl : null)], ct);

    /// <summary>
    /// Which of <paramref name="clientUrls"/> (null: a member not to ask) is the leader's, asked of the members
    /// themselves; -1 when none of them knows one (no quorum, or none answers).
    /// </summary>
    public static async Task<int> LeaderAsync(IReadOnlyList<string?> clientUrls, CancellationToken ct = default)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var ids = new ulong[clientUrls.Count];
        ulong leader = 0;
        for (var i = 0; i < clientUrls.Count; i++)
        {
            if (clientUrls[i] is not { } url) continue;
            try
            {
                // etcd's JSON gateway of Maintenance.Status: uint64 fields come as decimal strings.
                using var content = new StringContent("{}", Encoding.UTF8, "application/json");
                using var resp = await http.PostAsync(new Uri(url + "/v3/maintenance/status"), content, ct);
                using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct));
                ids[i] = ulong.Parse(doc.RootElement.GetProperty("header").GetProperty("member_id").GetString()!);
                if (doc.RootElement.TryGetProperty("leader", out var l)) leader = ulong.Parse(l.GetString()!);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException)
            {
                // a frozen or starting member: the others say who leads
            }
        }
        return leader == 0 ? -1 : Array.IndexOf(ids, leader);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var m in Members) await m.DisposeAsync();
    }
}
