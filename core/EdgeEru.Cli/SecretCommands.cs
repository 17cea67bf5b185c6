using System.CommandLine;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru secret</c> and <c>eru registry-auth</c>: stored sealed by eru-core, listed without their content.
/// No command prints a secret or a password.
/// </summary>
internal static class SecretCommands
{
    public static IEnumerable<Command> Create()
    {
        var api = new CoreApi();
        var name = new Argument<string>("name") { Description = "Secret name (1-253 of A-Z a-z 0-9 . _ -)" };
        var fromFile = new Option<FileInfo?>("--from-file") { Description = "Read the value from this file (default: standard input)" };
        var set = new Command("set", "Store a secret (replacing its value); the value comes from --from-file or standard input")
            { name, fromFile };
        set.SetAction((pr, ct) => api.RunAsync(pr, "secret set", async (c, t) =>
        {
            var content = pr.GetValue(fromFile) is { } f ? await File.ReadAllBytesAsync(f.FullName, t) : await ReadStdinAsync(t);
            var info = await c.SetSecretAsync(
                new V1.SetSecretRequest { Name = pr.GetValue(name), Content = ByteString.CopyFrom(content) }, cancellationToken: t);
            Console.WriteLine($"secret {info.Name} set ({info.Size} bytes)");
            return 0;
        }, ct));
        var ls = new Command("ls", "List secrets: name, size, when set, and which workloads use them (never the content)");
        ls.SetAction((pr, ct) => api.RunAsync(pr, "secret ls", async (c, t) =>
        {
            var reply = await c.ListSecretsAsync(new V1.ListSecretsRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["NAME", "SIZE", "UPDATED", "USED BY"], reply.Secrets.Select(s => new[]
                { s.Name, s.Size.ToString(CultureInfo.InvariantCulture), s.UpdatedAt, string.Join(", ", s.UsedBy) }));
            return 0;
        }, ct));
        var force = new Option<bool>("--force") { Description = "Remove even when workloads use it (they keep their copy)" };
        var rm = new Command("rm", "Remove a secret; refused while workloads use it, unless forced") { name, force };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "secret rm", async (c, t) =>
        {
            await c.RemoveSecretAsync(
                new V1.RemoveSecretRequest { Name = pr.GetValue(name), Force = pr.GetValue(force) }, cancellationToken: t);
            Console.WriteLine($"secret {pr.GetValue(name)} removed");
            return 0;
        }, ct));
        var secret = new Command("secret", "Secrets, written into containers as files (app.yaml secrets:); kept sealed by eru-core")
            { set, ls, rm };

        var host = new Argument<string>("host")
        {
            Description = "Registry host as image names start with it (registry.example.com, 10.0.0.5:5000)",
        };
        var user = new Option<string>("--user", "-u") { Description = "User name", Required = true };
        var passwordStdin = new Option<bool>("--password-stdin")
        {
            Description = "Read the password from standard input (the only way: never on the command line)",
        };
        var add = new Command("add", "Store the credentials Core uses to pull (and push) images of HOST") { host, user, passwordStdin };
        add.SetAction((pr, ct) => api.RunAsync(pr, "registry-auth add", async (c, t) =>
        {
            if (!pr.GetValue(passwordStdin)) throw new FormatException("give the password on standard input with --password-stdin");
            var password = Encoding.UTF8.GetString(await ReadStdinAsync(t)).TrimEnd('\r', '\n');
            var info = await c.SetRegistryAuthAsync(
                new V1.SetRegistryAuthRequest { Host = pr.GetValue(host), User = pr.GetValue(user), Password = password },
                cancellationToken: t);
            Console.WriteLine($"credentials for {info.Host} stored (user {info.User})");
            return 0;
        }, ct));
        var authLs = new Command("ls", "List registry credentials: host and user (never the password)");
        authLs.SetAction((pr, ct) => api.RunAsync(pr, "registry-auth ls", async (c, t) =>
        {
            var reply = await c.ListRegistryAuthAsync(new V1.ListRegistryAuthRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["HOST", "USER", "UPDATED"], reply.Entries.Select(e => new[] { e.Host, e.User, e.UpdatedAt }));
            return 0;
        }, ct));
        var authRm = new Command("rm", "Forget the credentials of HOST") { host };
        authRm.SetAction((pr, ct) => api.RunAsync(pr, "registry-auth rm", async (c, t) =>
        {
            await c.RemoveRegistryAuthAsync(new V1.RemoveRegistryAuthRequest { Host = pr.GetValue(host) }, cancellationToken: t);
            Console.WriteLine($"credentials for {pr.GetValue(host)} removed");
            return 0;
        }, ct));
        var registryAuth = new Command("registry-auth", "Credentials of private image registries, kept sealed by eru-core")
            { add, authLs, authRm };
        foreach (var c in new[] { set, ls, rm, add, authLs, authRm }) api.AddTo(c);
        return [secret, registryAuth];
    }

    private static async Task<byte[]> ReadStdinAsync(CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        await using var stdin = Console.OpenStandardInput();
        await stdin.CopyToAsync(buffer, ct);
        return buffer.ToArray();
    }
}
