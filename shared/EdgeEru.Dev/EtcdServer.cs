using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeEru.Dev;

public sealed record EtcdServerOptions
{
    /// <summary>Data directory; a new temporary one (removed on dispose) when null.</summary>
    public string? DataDir { get; init; }

    /// <summary>Remove <see cref="DataDir"/> on dispose (set for the temporary one).</summary>
    internal bool OwnsDataDir { get; init; }

    /// <summary>Client port on 127.0.0.1; a free one when 0.</summary>
    public int ClientPort { get; init; }

    public int PeerPort { get; init; }

    /// <summary>
    /// More addresses etcd serves clients on, at the same port as loopback: a Docker rig's bridge address lets
    /// containers on the rig's hosts reach it (the bridge is the way into the root namespace).
    /// </summary>
    public IReadOnlyList<string> ExtraClientAddresses { get; init; } = [];

    /// <summary>Extra etcd flags (e.g. --max-txn-ops=10000).</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>The member's name in its cluster.</summary>
    public string Name { get; init; } = "eru";

    /// <summary>
    /// Every member of the cluster this one starts in (name and peer port on loopback), itself included; empty:
    /// a cluster of one. See <see cref="EtcdCluster"/>.
    /// </summary>
    public IReadOnlyList<(string Name, int PeerPort)> InitialCluster { get; init; } = [];
}

/// <summary>
/// A real etcd (Debian package etcd-server) on loopback, as a child process. Stop/Start keep its data
/// and ports, so tests can take etcd away and bring it back.
/// </summary>
public sealed class EtcdServer : IAsyncDisposable
{
    private readonly string _binary;
    private readonly string _dataDir;
    private readonly bool _ownsDataDir;
    private readonly IReadOnlyList<string> _extraArgs;
    private readonly IReadOnlyList<string> _extraAddresses;
    private readonly ILogger _log;
    private readonly string _initialCluster;
    private ChildProcess? _process;

    private EtcdServer(string binary, string dataDir, bool ownsDataDir, int clientPort, int peerPort, EtcdServerOptions options,
        ILogger log)
    {
        _binary = binary;
        Name = options.Name;
        var members = options.InitialCluster.Count > 0 ? options.InitialCluster : [(options.Name, peerPort)];
        _initialCluster = string.Join(',', members.Select(m => $"{m.Name}=http://127.0.0.1:{m.PeerPort}"));
        _dataDir = dataDir;
        _ownsDataDir = ownsDataDir;
        ClientPort = clientPort;
        PeerPort = peerPort;
        _extraArgs = options.ExtraArgs;
        _extraAddresses = options.ExtraClientAddresses;
        _log = log;
    }

    public string Name { get; }

    public int ClientPort { get; private set; }
    public int PeerPort { get; private set; }
    public string ClientUrl => $"http://127.0.0.1:{ClientPort}";

    /// <summary>Every URL it serves clients on: loopback first, then the extra addresses.</summary>
    public IReadOnlyList<string> ClientUrls => [ClientUrl, .. _extraAddresses.Select(a => $"http://{a}:{ClientPort}")];

    public string DataDir => _dataDir;
    public bool IsRunning => _process is { HasExited: false };
    public int? ProcessId => _process?.Id;

    public static async Task<EtcdServer> StartAsync(EtcdServerOptions? options = null, ILogger? log = null, CancellationToken ct = default)
    {
        options ??= new EtcdServerOptions();
        if (options.DataDir is null) options = options with { DataDir = NewDataDir(), OwnsDataDir = true }; // one for every attempt
        for (var attempt = 1; ; attempt++)
        {
            var server = Create(options, log);
            try
            {
                await server.StartAsync(ct);
                return server;
            }
            catch (EtcdStartException) when (options.ClientPort == 0 && attempt < 3)
            {
                // A free port was taken between choosing it and etcd binding it: choose again.
                await server.StopAsync();
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>A server not yet started; free ports are chosen for ports left 0.</summary>
    internal static EtcdServer Create(EtcdServerOptions options, ILogger? log)
    {
        var owns = options.DataDir is null || options.OwnsDataDir;
        var dataDir = options.DataDir ?? NewDataDir();
        Directory.CreateDirectory(dataDir);
        return new EtcdServer(Tools.Find("etcd", "etcd-server"), dataDir, owns,
            options.ClientPort != 0 ? options.ClientPort : Ports.FreeTcp(),
            options.PeerPort != 0 ? options.PeerPort : Ports.FreeTcp(),
            options, log ?? NullLogger.Instance);
    }

    private static string NewDataDir() => Path.Combine(Path.GetTempPath(), "eru-etcd-" + Guid.NewGuid().ToString("N")[..12]);

    /// <summary>(Re)starts the process on the same ports and data directory and waits until it serves.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        if (IsRunning) return;
        Spawn();
        await WaitHealthyAsync(ct);
    }

    /// <summary>
    /// Starts the process without waiting: a member of a new cluster is healthy only once a quorum of members
    /// runs, so <see cref="EtcdCluster"/> spawns them all, then waits. On a restart the data directory holds the
    /// membership and the initial-cluster flags are ignored.
    /// </summary>
    internal void Spawn()
    {
        if (IsRunning) return;
        string[] args =
        [
            "--name", Name,
            "--data-dir", Path.Combine(_dataDir, "data"),
            "--listen-client-urls", string.Join(',', ClientUrls),
            "--advertise-client-urls", string.Join(',', ClientUrls),
            "--listen-peer-urls", $"http://127.0.0.1:{PeerPort}",
            "--initial-advertise-peer-urls", $"http://127.0.0.1:{PeerPort}",
            "--initial-cluster", _initialCluster,
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-outputs", "stderr",
            .. _extraArgs,
        ];
        _process = ChildProcess.Start(_binary, args);
    }

    /// <summary>Waits until the member answers /health with true (it has a leader), or throws after 30 s.</summary>
    internal async Task WaitHealthyAsync(CancellationToken ct)
    {
        var p = _process ?? throw new InvalidOperationException($"etcd {Name} is not started");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (p.HasExited)
                throw new EtcdStartException($"etcd exited with code {p.ExitCode} while starting on {ClientUrl}:\n{p.OutputTail()}");
            try
            {
                var body = await http.GetStringAsync(new Uri(ClientUrl + "/health"), ct);
                if (body.Contains("\"health\":\"true\"", StringComparison.Ordinal)) break;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            if (DateTime.UtcNow > deadline)
                throw new EtcdStartException($"etcd did not become healthy on {ClientUrl} within 30 s:\n{p.OutputTail()}");
            await Task.Delay(50, ct);
        }
        _log.LogInformation("etcd {Name} ({Pid}) serving on {Url} (data {DataDir})", Name, p.Id, ClientUrl, _dataDir);
    }

    /// <summary>Stops etcd gracefully (SIGTERM), keeping its data; <paramref name="kill"/> sends SIGKILL (a crash).</summary>
    public async Task StopAsync(bool kill = false)
    {
        var p = _process;
        if (p is null) return;
        _process = null;
        await p.DisposeAsync(kill);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_ownsDataDir)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

public sealed class EtcdStartException(string message) : Exception(message);
