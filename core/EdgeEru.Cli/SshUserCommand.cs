using System.CommandLine;
using System.Security.Cryptography;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;

namespace EdgeEru.Cli;

/// <summary><c>eru ssh-user</c>: who may log in through the SSH gateway (eru-ssh), with which keys, into which apps.</summary>
internal static class SshUserCommand
{
    public static Command Create()
    {
        var etcd = new Option<string>("--etcd")
        {
            Description = "etcd client URL (https: client certificate from $ERU_ETCD_CERT, $ERU_ETCD_KEY, CA from $ERU_ETCD_CA)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_ETCD") ?? "http://127.0.0.1:23790", Recursive = true,
        };
        var prefix = new Option<string>("--prefix") { DefaultValueFactory = _ => RegistryKeys.DefaultPrefix, Recursive = true };
        var name = new Argument<string>("user") { Description = "Login name" };
        var keys = new Option<string[]>("--key") { Description = "An authorized_keys line (quoted); repeatable" };
        var keyFiles = new Option<string[]>("--key-file")
        {
            Description = "A file of authorized_keys lines (e.g. ~/.ssh/id_ed25519.pub); repeatable",
        };
        var apps = new Option<string[]>("--app")
        {
            Description = "APP[:shell|:exec][:CONTAINER_USER], or * for every app; repeatable (default mode: shell)",
        };

        var ls = new Command("ls", "List SSH users: keys (SHA256 fingerprints) and apps");
        ls.SetAction((pr, ct) => WithStore(pr.GetValue(etcd)!, pr.GetValue(prefix)!, "ls", async store =>
        {
            var (users, _) = await store.ListAsync(Kinds.SshUsers, ct: ct);
            Console.WriteLine($"{"USER",-20} {"APPS",-40} KEYS");
            foreach (var u in users.Select(v => v.Value).OrderBy(u => u.Name, StringComparer.Ordinal))
            {
                var appText = string.Join(",", u.Apps.OrderBy(a => a.Key, StringComparer.Ordinal)
                    .Select(a => a.Key + (a.Value.Shell ? "" : ":exec") + (a.Value.User is null ? "" : ":" + a.Value.User)));
                Console.WriteLine(
                    $"{u.Name,-20} {(appText.Length == 0 ? "-" : appText),-40} {string.Join(" ", u.Keys.Select(Fingerprint))}");
            }
            return 0;
        }));

        var add = new Command("add", "Add a user (refused when the user exists)") { name, keys, keyFiles, apps };
        add.SetAction((pr, ct) => WithStore(pr.GetValue(etcd)!, pr.GetValue(prefix)!, "add", async store =>
        {
            var user = new SshUser
            {
                Name = pr.GetValue(name)!, Keys = ReadKeys(pr.GetValue(keys) ?? [], pr.GetValue(keyFiles) ?? []),
                Apps = ParseApps(pr.GetValue(apps) ?? []),
            };
            if (!await store.CreateAsync(Kinds.SshUsers, user, ct: ct)) throw new CliException($"user {user.Name} exists already");
            Console.WriteLine($"added {user.Name}: {user.Keys.Length} key(s), apps {string.Join(",", user.Apps.Keys)}");
            return 0;
        }));

        var rm = new Command("rm", "Remove a user: their next login is refused") { name };
        rm.SetAction((pr, ct) => WithStore(pr.GetValue(etcd)!, pr.GetValue(prefix)!, "rm", async store =>
        {
            if (!await store.DeleteAsync(Kinds.SshUsers, pr.GetValue(name)!, ct)) throw new CliException($"no user {pr.GetValue(name)}");
            Console.WriteLine($"removed {pr.GetValue(name)}");
            return 0;
        }));

        var keyAdd = new Command("add", "Add keys to a user (--key and --key-file)") { name, keys, keyFiles };
        keyAdd.SetAction((pr, ct) => WithStore(pr.GetValue(etcd)!, pr.GetValue(prefix)!, "key add", async store =>
        {
            var added = ReadKeys(pr.GetValue(keys) ?? [], pr.GetValue(keyFiles) ?? []);
            if (added.Length == 0) throw new CliException("name at least one --key or --key-file");
            var user = await store.UpdateAsync(Kinds.SshUsers, pr.GetValue(name)!, u => u is null
                ? throw new CliException($"no user {pr.GetValue(name)}")
                : u with { Keys = [.. u.Keys, .. added.Where(k => !u.Keys.Contains(k))] }, ct: ct);
            Console.WriteLine($"{user!.Name} has {user.Keys.Length} key(s)");
            return 0;
        }));

        var allow = new Command("allow", "Let a user into an app (replaces that app's entry)") { name, apps };
        allow.SetAction((pr, ct) => WithStore(pr.GetValue(etcd)!, pr.GetValue(prefix)!, "allow", async store =>
        {
            var more = ParseApps(pr.GetValue(apps) ?? []);
            if (more.Count == 0) throw new CliException("name at least one --app");
            var user = await store.UpdateAsync(Kinds.SshUsers, pr.GetValue(name)!, u => u is null
                ? throw new CliException($"no user {pr.GetValue(name)}")
                : u with { Apps = new Dictionary<string, SshAppAccess>(
                    u.Apps.Concat(more).GroupBy(a => a.Key).Select(g => g.Last())) }, ct: ct);
            Console.WriteLine($"{user!.Name} may enter {string.Join(",", user.Apps.Keys.Order(StringComparer.Ordinal))}");
            return 0;
        }));

        return new Command("ssh-user", "Users of the SSH gateway: keys and the apps they may enter")
        {
            etcd, prefix, ls, add, rm, new Command("key", "A user's public keys") { keyAdd }, allow,
        };
    }

    private static async Task<int> WithStore(string endpoints, string prefix, string what, Func<RegistryStore, Task<int>> run)
    {
        try
        {
            var options = CliText.Etcd(endpoints, prefix);
            options.ParseEndpoints();
            using var conn = new EtcdConnection(options);
            return await run(new RegistryStore(conn));
        }
        catch (Exception e) when (e is CliException or ArgumentException or RegistryValueException or IOException)
        {
            await Console.Error.WriteLineAsync($"eru ssh-user {what}: {e.Message}");
            return 2;
        }
        catch (Grpc.Core.RpcException e)
        {
            await Console.Error.WriteLineAsync($"eru ssh-user {what}: no answer from etcd at {endpoints}: {e.Status.Detail}");
            return 1;
        }
    }

    /// <summary>Key lines as given, and those of key files (one per line, comments and blank lines skipped); each checked.</summary>
    internal static string[] ReadKeys(IEnumerable<string> given, IEnumerable<string> files)
    {
        var lines = given.Select(l => l.Trim()).ToList();
        foreach (var f in files)
        {
            var path = f.StartsWith("~/", StringComparison.Ordinal)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), f[2..])
                : f;
            if (!File.Exists(path)) throw new CliException($"key file {path} does not exist");
            lines.AddRange(File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
        }
        foreach (var l in lines)
            if (SshUser.KeyLineProblem(l) is { } problem) throw new CliException($"key \"{Short(l)}\": {problem}");
        return [.. lines];
    }

    /// <summary>APP[:shell|:exec][:USER] → access entries.</summary>
    internal static Dictionary<string, SshAppAccess> ParseApps(IEnumerable<string> args)
    {
        var d = new Dictionary<string, SshAppAccess>(StringComparer.Ordinal);
        foreach (var a in args)
        {
            var parts = a.Split(':');
            var shell = true;
            string? user = null;
            var rest = parts.Skip(1).ToList();
            if (rest.Count > 0 && rest[0] is "shell" or "exec")
            {
                shell = rest[0] == "shell";
                rest.RemoveAt(0);
            }
            if (rest.Count > 0) user = string.Join(':', rest);
            if (parts[0].Length == 0) throw new CliException($"--app \"{a}\" names no app");
            d[parts[0]] = new SshAppAccess { Shell = shell, User = user };
        }
        return d;
    }

    private static string Fingerprint(string line)
    {
        var tokens = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        foreach (var t in tokens)
        {
            try
            {
                var blob = Convert.FromBase64String(t);
                if (blob.Length > 16) return "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');
            }
            catch (FormatException)
            {
                // not the key data
            }
        }
        return "?";
    }

    private static string Short(string s) => s.Length > 40 ? s[..40] + "..." : s;
}

internal sealed class CliException(string message) : Exception(message);
