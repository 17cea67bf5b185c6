using System.CommandLine;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru dev</c>: a local cluster in the foreground. Today: etcd and the registry; each component
/// joins as it lands. Ctrl-C stops everything it started; a run after a crash first removes what
/// the crashed run left.
/// </summary>
internal static class DevCommand
{
    public static Command Create()
    {
        var etcdUrl = new Option<string?>("--etcd") { Description = "Use this etcd (client URL) instead of starting one" };
        var etcdPort = new Option<int>("--etcd-port") { Description = "Loopback port of the etcd this starts", DefaultValueFactory = _ => 23790 };
        var stateDir = new Option<string>("--state-dir") { Description = "Where the local cluster keeps its files", DefaultValueFactory = _ => ".dev" };
        var prefix = new Option<string>("--prefix") { Description = "Registry key prefix", DefaultValueFactory = _ => RegistryKeys.DefaultPrefix };
        etcdPort.Validators.Add(r =>
        {
            if (r.GetValue(etcdPort) is < 1 or > 65534) r.AddError("--etcd-port must be between 1 and 65534 (the next port is etcd's peer port)");
        });
        etcdUrl.Validators.Add(r =>
        {
            var v = r.GetValue(etcdUrl);
            if (v is not null && (!Uri.TryCreate(v, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")))
                r.AddError($"--etcd: \"{v}\" is not an http:// or https:// URL");
        });
        prefix.Validators.Add(r =>
        {
            try
            {
                _ = new RegistryKeys(r.GetValue(prefix)!);
            }
            catch (ArgumentException ex)
            {
                r.AddError("--prefix: " + ex.Message);
            }
        });

        var cmd = new Command("dev", "Run a local EdgeEru cluster in the foreground; Ctrl-C stops everything it started")
        {
            etcdUrl, etcdPort, stateDir, prefix,
        };
        cmd.SetAction((pr, ct) => RunAsync(pr.GetValue(etcdUrl), pr.GetValue(etcdPort), pr.GetValue(stateDir)!, pr.GetValue(prefix)!, ct));
        return cmd;
    }

    private static async Task<int> RunAsync(string? etcdUrl, int etcdPort, string stateDir, string prefix, CancellationToken ct)
    {
        using var logs = LoggerFactory.Create(b => b
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information));
        var log = logs.CreateLogger("eru.dev");
        stateDir = Path.GetFullPath(stateDir);
        Directory.CreateDirectory(stateDir);
        var pidFile = Path.Combine(stateDir, "etcd.pid");
        EtcdServer? etcd = null;
        try
        {
            if (etcdUrl is null)
            {
                Leftovers.Clean(pidFile, "etcd", log);
                var dataDir = Path.Combine(stateDir, "etcd");
                if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true); // the dev cluster starts clean
                etcd = await EtcdServer.StartAsync(new EtcdServerOptions
                {
                    DataDir = dataDir,
                    ClientPort = etcdPort,
                    PeerPort = etcdPort + 1,
                }, logs.CreateLogger("etcd"), ct);
                await File.WriteAllTextAsync(pidFile, etcd.ProcessId.ToString(), ct);
                etcdUrl = etcd.ClientUrl;
            }

            using var conn = new EtcdConnection(new RegistryOptions { Endpoints = etcdUrl, Prefix = prefix });
            var store = new RegistryStore(conn);
            await store.CreateAsync(Kinds.Pods, new Pod { Name = "dev", Description = "local cluster of eru dev" }, ct: ct);
            await using var watcher = new RegistryWatcher(conn, logs.CreateLogger<RegistryWatcher>());
            using var sub = watcher.Subscribe(new SnapshotSummary(log).OnSnapshot);
            watcher.Start();
            await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(30), ct);

            Console.WriteLine();
            Console.WriteLine("EdgeEru dev cluster is up");
            Console.WriteLine($"  etcd       {etcdUrl,-28} registry prefix {prefix}{(etcd is null ? " (yours)" : $", data {etcd.DataDir}")}");
            Console.WriteLine();
            Console.WriteLine("Try it:");
            Console.WriteLine($"  etcdctl --endpoints {etcdUrl} get --prefix {prefix}/ --keys-only");
            Console.WriteLine();
            Console.WriteLine("Ctrl-C stops everything this started.");
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            log.LogInformation("stopping");
            return 0;
        }
        catch (Exception ex) when (ex is ToolMissingException or EtcdStartException or Grpc.Core.RpcException or TimeoutException)
        {
            log.LogError("eru dev failed: {Error}", ex.Message);
            return 1;
        }
        finally
        {
            if (etcd is not null)
            {
                await etcd.DisposeAsync();
                File.Delete(pidFile);
                log.LogInformation("etcd stopped");
            }
        }
    }

    /// <summary>Logs what the registry holds whenever it changes, at most once a second.</summary>
    private sealed class SnapshotSummary(ILogger log)
    {
        private DateTime _last = DateTime.MinValue;
        private string _lastText = "";

        public void OnSnapshot(RegistrySnapshot s)
        {
            var text = $"{s.Pods.Count} pods, {s.Nodes.Count} nodes ({s.NodeStatuses.Count} alive), {s.Workloads.Count} workloads ({s.LiveCount} live), {s.Problems.Count} bad values";
            if (text == _lastText || DateTime.UtcNow - _last < TimeSpan.FromSeconds(1)) return;
            _last = DateTime.UtcNow;
            _lastText = text;
            log.LogInformation("registry at revision {Revision}: {Summary}", s.Revision, text);
        }
    }
}
