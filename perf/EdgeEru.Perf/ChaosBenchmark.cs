using System.Diagnostics;
using System.Text.Json;
using EdgeEru.Dev;

namespace EdgeEru.Perf;

/// <summary>
/// chaos: <c>./eru dev --hosts 3 --etcd-members 3</c>, then <see cref="ChaosRun"/>'s fixed script of faults under
/// continuous DNS queries, HTTP requests through the LB and SSH commands. Reports per fault the failed DNS answers,
/// failed HTTP requests and failed SSH commands (target 0), DNS answers naming the dead address (counted apart:
/// a resolver may hold them for the record's TTL), the seconds until the platform was whole again, and after the
/// run the containers no record knows and the records without a container (target 0). The anchor is the target.
/// </summary>
internal static class ChaosBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("perf chaos: simulated Docker hosts need root");
            return 2;
        }
        Console.Error.WriteLine("starting ./eru dev --hosts 3 --etcd-members 3");
        var started = Stopwatch.StartNew();
        await using var dev = await EruDev.StartAsync(SelfHostingBenchmark.RepoRoot(), ["--hosts", "3", "--etcd-members", "3"],
            line => Console.Error.WriteLine("  | " + line));
        var upS = started.Elapsed.TotalSeconds;
        var outcome = await new ChaosRun(dev, Console.Error.WriteLine).RunAsync();

        var result = new Dictionary<string, object> { ["dev_cluster_up_s"] = Stats.Round(upS, 1) };
        foreach (var f in outcome.Faults)
        {
            var key = Key(f.Fault);
            result[key + "_dns_failed"] = f.Load.DnsFailed;
            result[key + "_dns_stale"] = f.Load.DnsStale;
            result[key + "_http_failed"] = f.Load.HttpFailed;
            result[key + "_ssh_failed"] = f.SshFailed;
            result[key + "_recover_s"] = Stats.Round(f.RecoverSeconds, 1);
        }
        result["dns_answered"] = outcome.Faults.Sum(f => f.Load.DnsOk);
        result["http_ok"] = outcome.Faults.Sum(f => f.Load.HttpOk);
        result["ssh_ok"] = outcome.Faults.Sum(f => f.SshOk);
        result["failed_requests"] = outcome.FailedRequests;
        result["leaked_workloads"] = outcome.Leaked;
        result["lost_workloads"] = outcome.Lost;
        result["targets_met"] = outcome.FailedRequests == 0 && outcome.Leaked == 0 && outcome.Lost == 0
            && outcome.Faults.All(f => f.RecoverSeconds >= 0);
        Console.WriteLine("RESULT chaos " + JsonSerializer.Serialize(result));
        return 0;
    }

    /// <summary>"etcd leader SIGKILL" → "etcd_leader_sigkill": a JSON key per fault.</summary>
    private static string Key(string fault) =>
        string.Join('_', fault.ToLowerInvariant().Split([' ', '-'], StringSplitOptions.RemoveEmptyEntries));
}
