using System.Text;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Every eru command but <c>dev</c> needs only eru-core's API and a token (issue 18): each leaf of the command tree, as
/// <c>eru --help</c> lists it, runs here against a real eru-core with etcd unreachable from the CLI's side. A command that
/// succeeds without a Docker host exits 0; one that needs a host is refused by Core itself (never a failure to reach
/// etcd, or Core). A new command with no entry in the table fails the test.
/// </summary>
public sealed partial class CliWithoutEtcdTests(EtcdFixture etcd, ITestOutputHelper output) : IClassFixture<EtcdFixture>, IAsyncLifetime
{
    private const string Token = "bootstrap";
    private const string Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPu+0Hcve7gZNwdjyd3yxaAi6Fr+9VsrNZulrAR5JGAW ops@laptop";
    private readonly string _dir = Directory.CreateTempSubdirectory("eru-cli-noetcd-").FullName;
    private WebApplication _core = null!;
    private string _url = "";

    private static readonly string Hello = Path.Combine(Repo.Root, "examples", "hello.yaml");

    private static readonly Dictionary<string, string?> NoEtcd = new() { ["ERU_ETCD"] = "http://127.0.0.1:1", ["ERU_DC"] = null };

    /// <summary>
    /// Each leaf command in order (later ones use what earlier ones made), and whether it completes with no Docker host or agent.
    /// The LB's commands talk to eru-lb's admin API (LbAdminTests, AcmeTests), <c>dev</c> owns etcd: they are named apart.
    /// </summary>
    private static readonly (string Command, string[] Args, bool Completes, string? Stdin)[] Table =
    [
        ("pod add", ["pod", "add", "dev"], true, null),
        ("pod ls", ["pod", "ls"], true, null),
        ("node add", ["node", "add", "h1", "--pod", "dev", "--endpoint", "unix:///nonexistent/docker.sock"], false, null),
        ("node ls", ["node", "ls"], true, null),
        ("node set", ["node", "set", "h1", "--unschedulable"], false, null),
        ("node rm", ["node", "rm", "h1"], false, null),
        ("ps", ["ps"], true, null),
        ("capacity", ["capacity", Hello, "--pod", "dev", "--memory", "32M"], false, null),
        ("deploy", ["deploy", Hello, "--pod", "dev", "--memory", "32M"], false, null),
        ("replace", ["replace", Hello, "--pod", "dev", "--memory", "32M"], false, null),
        ("realloc", ["realloc", "hello", "--memory", "64M"], false, null),
        ("start", ["start", "hello_web_000000"], false, null),
        ("stop", ["stop", "hello_web_000000"], false, null),
        ("restart", ["restart", "hello_web_000000"], false, null),
        ("rm", ["rm", "hello_web_000000"], false, null),
        ("run", ["run", Hello, "--pod", "dev", "--memory", "32M", "--", "true"], false, null),
        ("cp", ["cp", "hello_web_000000:/www/index.html", "index.html"], false, null),
        ("build", ["build", Path.Combine(Repo.Root, "examples"), "--pod", "dev", "--tag", "hello:1"], false, null),
        ("logs", ["logs", "hello", "--tail", "10"], false, null),
        ("ssh-user add", ["ssh-user", "add", "ops", "--key", Key, "--app", "hello"], true, null),
        ("ssh-user ls", ["ssh-user", "ls"], true, null),
        ("ssh-user key add", ["ssh-user", "key", "add", "ops", "--key", Key], true, null),
        ("ssh-user allow", ["ssh-user", "allow", "ops", "--app", "shop:exec"], true, null),
        ("ssh-user rm", ["ssh-user", "rm", "ops"], true, null),
        ("dns set", ["dns", "set", "db.eru", "--record", "A 198.18.0.5"], true, null),
        ("dns ls", ["dns", "ls"], true, null),
        ("dns rm", ["dns", "rm", "db.eru"], true, null),
        ("token create", ["token", "create", "ci", "--scope", "read"], true, null),
        ("token ls", ["token", "ls"], true, null),
        ("token rm", ["token", "rm", "ci"], true, null),
        ("secret set", ["secret", "set", "db-password"], true, "s3cret"),
        ("secret ls", ["secret", "ls"], true, null),
        ("secret rm", ["secret", "rm", "db-password"], true, null),
        ("registry-auth add", ["registry-auth", "add", "registry.example.com", "--user", "ci", "--password-stdin"], true, "pw"),
        ("registry-auth ls", ["registry-auth", "ls"], true, null),
        ("registry-auth rm", ["registry-auth", "rm", "registry.example.com"], true, null),
        ("pod rm", ["pod", "rm", "dev"], true, null),
    ];

    private static readonly string[] NotThroughCore =
        ["dev", "lb ls", "lb get", "lb set", "lb rm", "lb explain", "lb stats", "lb cert ls", "lb cert set", "lb cert rm"];

    public async Task InitializeAsync()
    {
        var key = Path.Combine(_dir, "secrets.key");
        await File.WriteAllBytesAsync(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        _url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        _core = CoreHost.Create(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", EtcdFixture.NewPrefix(), "--Core:Urls", _url,
            "--Core:Token", Token, "--Core:AgentToken", "agent", "--Core:SecretsKeyFile", key,
            "--Core:AuditLog", Path.Combine(_dir, "audit.jsonl"),
            "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}"], l => l.AddProvider(new XunitLoggerProvider(output)));
        await _core.StartAsync();
    }

    /// <summary>The leaf commands under <paramref name="path"/>, from the CLI's own help.</summary>
    private async Task<List<string>> LeavesAsync(string[] path)
    {
        var (_, help) = await EruCli.RunAsync(output, [.. path, "--help"]);
        var commands = help.Split('\n').SkipWhile(l => !l.StartsWith("Commands:", StringComparison.Ordinal)).Skip(1)
            .TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal)).Select(l => l.Trim().Split(' ')[0])
            .Where(c => c.Length > 0).ToList();
        if (commands.Count == 0) return [string.Join(' ', path)];
        var leaves = new List<string>();
        foreach (var c in commands) leaves.AddRange(await LeavesAsync([.. path, c]));
        return leaves;
    }

    [Fact]
    public async Task Every_command_runs_with_only_core_and_a_token()
    {
        var leaves = await LeavesAsync([]);
        var missing = leaves.Except(Table.Select(t => t.Command)).Except(NotThroughCore).ToList();
        Assert.True(missing.Count == 0, $"commands with no entry in the table: {string.Join(", ", missing)}");
        Assert.Empty(Table.Select(t => t.Command).Except(leaves)); // and no entry for a command that is gone

        foreach (var (command, args, completes, stdin) in Table)
        {
            var (code, stdout, stderr) = await EruCli.RunAsync(output, stdin is null ? null : Encoding.UTF8.GetBytes(stdin), NoEtcd,
                [.. args, "--core", _url, "--token", Token]);
            var text = stdout + stderr;
            Assert.False(EtcdAddress().IsMatch(text) || text.Contains("eru-core at", StringComparison.Ordinal),
                $"eru {command} tried to reach etcd, or could not reach Core: {text}");
            if (completes) Assert.True(code == 0, $"eru {command} exited {code}: {text}");
            else Assert.True(code != 0 && text.Trim().Length > 0, $"eru {command} should be refused by Core with a reason: {code} {text}");
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"127\.0\.0\.1:1\b")]
    private static partial System.Text.RegularExpressions.Regex EtcdAddress();

    public async Task DisposeAsync()
    {
        await _core.StopAsync();
        await _core.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
