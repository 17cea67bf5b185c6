using EdgeEru.Core.Deploy;
using EdgeEru.Dev;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>What <c>eru dev</c> puts in a new cluster to try it with: the hello app, its canary domain, an SSH user's keys.</summary>
internal static class DevDemo
{
    private static readonly string[] KeyFiles = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"];

    /// <summary>hello's web entrypoint from examples/hello.yaml, as `eru deploy` would send it.</summary>
    public static DeploySpec HelloSpec(string version, int count, string network) =>
        AppSpec.Parse(File.ReadAllText(Path.Combine("examples", "hello.yaml"))).ToDeploySpec("web", new DeploySpec
        {
            App = "hello", Entrypoint = "web", Image = "", Pod = "dev", Count = count, Tags = [version], Env = [$"VERSION={version}"],
            Networks = new Dictionary<string, string> { [network] = "" },
            MemoryRequest = 32L << 20, MemoryLimit = 64L << 20, Cpu = 0.2,
        });

    /// <summary>
    /// hello answers in a millisecond: one that has not begun to answer (or connect) within 3 s hangs, and the request
    /// is retried on another instance (GET is idempotent) rather than kept waiting for the default 30 s. Not less: the
    /// timeout is one of activity, and a busy machine (a test suite beside the cluster) can stall a relay for a second.
    /// </summary>
    private static LbBackendOptions Answers => new() { TimeoutMs = 3000, Retries = 2 };

    /// <summary>The demo domain: X-Canary: 1 or 10% of users (sticky by cookie) to hello v2, the rest to v1.</summary>
    public static LbDomain Domain() => new()
    {
        Name = "hello.eru.local",
        Init = "canary-header",
        Nodes = new()
        {
            ["canary-header"] = new LbNode
            {
                Type = "header", Name = "X-Canary", Match = "exact", Value = "1", Succ = "v2", Fail = "split",
            },
            ["split"] = new LbNode { Type = "percent", Key = "cookie:uid", Percent = 10, Succ = "v2", Fail = "v1" },
            ["v1"] = new LbNode
            {
                Type = "backend", Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v1"] },
                Options = Answers,
            },
            ["v2"] = new LbNode
            {
                Type = "backend",
                Select = new LbSelector { App = "hello", Entrypoint = "web", Port = "http", Tags = ["v2"] },
                Fallback = new LbSelector { Tags = ["v1"] },
                Options = Answers,
            },
        },
    };

    /// <summary>
    /// The gateway user's public keys: the file given, else this machine's own ~/.ssh/id_*.pub; when there is
    /// none, an ed25519 key is made (as ssh-keygen would for a newcomer), so the try-it ssh line works.
    /// </summary>
    public static async Task<string[]> SshKeysAsync(string? keyFile, ILogger log, CancellationToken ct)
    {
        if (keyFile is not null)
        {
            var line = (await File.ReadAllTextAsync(keyFile, ct)).Trim();
            return SshUser.KeyLineProblem(line) is { } problem
                ? throw new DevCommand.ServiceStartException($"--ssh-key {keyFile}: {problem}")
                : [line];
        }
        var dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ssh");
        var keys = KeyFiles.Select(f => Path.Combine(dir, f)).Where(File.Exists)
            .Select(f => File.ReadAllText(f).Trim()).Where(l => SshUser.KeyLineProblem(l) is null).ToArray();
        if (keys.Length > 0) return keys;
        Directory.CreateDirectory(dir);
        var key = Path.Combine(dir, "id_ed25519");
        log.LogInformation("no SSH key in {Dir}: making {Key}", dir, key);
        await Shell.RunAsync(Tools.Find("ssh-keygen", "openssh-client"),
            ["-q", "-t", "ed25519", "-N", "", "-C", $"{Environment.UserName}@eru-dev", "-f", key]);
        return [(await File.ReadAllTextAsync(key + ".pub", ct)).Trim()];
    }
}
