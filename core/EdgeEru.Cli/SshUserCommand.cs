using System.CommandLine;
using System.Security.Cryptography;
using EdgeEru.Registry.Model;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru ssh-user</c>: who may log in through the SSH gateway (eru-ssh), with which keys, into which apps.</summary>
internal static class SshUserCommand
{
    public static Command Create()
    {
        var api = new CoreApi();
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
        ls.SetAction((pr, ct) => api.RunAsync(pr, "ssh-user ls", async (c, t) =>
        {
            var reply = await c.ListSshUsersAsync(new V1.ListSshUsersRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json))
            {
                Console.WriteLine(JsonFormatter.Default.Format(reply));
                return 0;
            }
            Console.WriteLine($"{"USER",-20} {"APPS",-40} KEYS");
            foreach (var u in reply.Users)
            {
                var appText = string.Join(",", u.Apps.OrderBy(a => a.Key, StringComparer.Ordinal)
                    .Select(a => a.Key + (a.Value.Shell ? "" : ":exec") + (a.Value.User.Length == 0 ? "" : ":" + a.Value.User)));
                Console.WriteLine(
                    $"{u.Name,-20} {(appText.Length == 0 ? "-" : appText),-40} {string.Join(" ", u.Keys.Select(Fingerprint))}");
            }
            return 0;
        }, ct));

        var add = new Command("add", "Add a user (refused when the user exists)") { name, keys, keyFiles, apps };
        add.SetAction((pr, ct) => api.RunAsync(pr, "ssh-user add", async (c, t) =>
        {
            var user = new SshUser
            {
                Name = pr.GetValue(name)!, Keys = ReadKeys(pr.GetValue(keys) ?? [], pr.GetValue(keyFiles) ?? []),
                Apps = ParseApps(pr.GetValue(apps) ?? []),
            };
            await c.PutSshUserAsync(new V1.PutSshUserRequest { User = ToApi(user), CreateOnly = true }, cancellationToken: t);
            Console.WriteLine($"added {user.Name}: {user.Keys.Length} key(s), apps {string.Join(",", user.Apps.Keys)}");
            return 0;
        }, ct));

        var rm = new Command("rm", "Remove a user: their next login is refused") { name };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "ssh-user rm", async (c, t) =>
        {
            await c.DeleteSshUserAsync(new V1.DeleteSshUserRequest { Name = pr.GetValue(name) }, cancellationToken: t);
            Console.WriteLine($"removed {pr.GetValue(name)}");
            return 0;
        }, ct));

        var keyAdd = new Command("add", "Add keys to a user (--key and --key-file)") { name, keys, keyFiles };
        keyAdd.SetAction((pr, ct) => api.RunAsync(pr, "ssh-user key add", async (c, t) =>
        {
            var added = ReadKeys(pr.GetValue(keys) ?? [], pr.GetValue(keyFiles) ?? []);
            if (added.Length == 0) throw new CliException("name at least one --key or --key-file");
            var user = await ChangeAsync(c, pr.GetValue(name)!, u =>
            {
                foreach (var k in added.Where(k => !u.Keys.Contains(k)).ToList()) u.Keys.Add(k);
            }, t);
            Console.WriteLine($"{user.Name} has {user.Keys.Count} key(s)");
            return 0;
        }, ct));

        var allow = new Command("allow", "Let a user into an app (replaces that app's entry)") { name, apps };
        allow.SetAction((pr, ct) => api.RunAsync(pr, "ssh-user allow", async (c, t) =>
        {
            var more = ParseApps(pr.GetValue(apps) ?? []);
            if (more.Count == 0) throw new CliException("name at least one --app");
            var user = await ChangeAsync(c, pr.GetValue(name)!, u =>
            {
                foreach (var (app, access) in more) u.Apps[app] = new V1.SshAppAccess { Shell = access.Shell, User = access.User ?? "" };
            }, t);
            Console.WriteLine($"{user.Name} may enter {string.Join(",", user.Apps.Keys.Order(StringComparer.Ordinal))}");
            return 0;
        }, ct));

        var cmd = new Command("ssh-user", "Users of the SSH gateway: keys and the apps they may enter (through eru-core)")
        {
            ls, add, rm, new Command("key", "A user's public keys") { keyAdd }, allow,
        };
        api.AddTo(cmd);
        LegacyEtcdOptions.AddTo(cmd, recursive: true);
        return cmd;
    }

    /// <summary>
    /// Read, change, write back only if nobody wrote the user meanwhile (if_revision); read again and retry when someone did.
    /// </summary>
    private static async Task<V1.SshUser> ChangeAsync(V1.Core.CoreClient c, string name, Action<V1.SshUser> change, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var user = (await c.ListSshUsersAsync(new V1.ListSshUsersRequest(), cancellationToken: ct)).Users
                .FirstOrDefault(u => u.Name == name) ?? throw new CliException($"no user {name}");
            change(user);
            try
            {
                return await c.PutSshUserAsync(new V1.PutSshUserRequest { User = user, IfRevision = user.Revision }, cancellationToken: ct);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.FailedPrecondition && attempt < 5)
            {
                // Another admin changed the user between our read and write: read it again.
            }
        }
    }

    private static V1.SshUser ToApi(SshUser u)
    {
        var v = new V1.SshUser { Name = u.Name };
        v.Keys.Add(u.Keys);
        foreach (var (app, access) in u.Apps) v.Apps[app] = new V1.SshAppAccess { Shell = access.Shell, User = access.User ?? "" };
        return v;
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

/// <summary>Invalid input found by a command itself (exit code 2, as CoreApi treats a FormatException).</summary>
internal sealed class CliException(string message) : FormatException(message);
