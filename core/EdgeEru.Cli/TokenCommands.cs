using System.CommandLine;
using Google.Protobuf;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru token</c>: API tokens of eru-core with scopes (read, deploy:APP, admin). The token string is printed once,
/// by create; eru-core keeps only a hash of its secret. Admin only.
/// </summary>
internal static class TokenCommands
{
    public static Command Create()
    {
        var api = new CoreApi();
        var name = new Argument<string>("name") { Description = "Token name (a DNS label: a-z 0-9 -); it shows in the audit log" };
        var scope = new Option<string[]>("--scope")
        {
            Description = "read, deploy:APP or admin; repeat for several", Required = true,
        };
        var ttl = new Option<string?>("--ttl") { Description = "Expires after this long (90m, 12h, 30d, 2w); default: never" };
        var create = new Command("create", "Make a token and print it (the only time it is shown)") { name, scope, ttl };
        create.SetAction((pr, ct) => api.RunAsync(pr, "token create", async (c, t) =>
        {
            var request = new V1.CreateTokenRequest { Name = pr.GetValue(name) };
            request.Scopes.Add(pr.GetValue(scope)!);
            if (pr.GetValue(ttl) is { } d) request.TtlSeconds = (long)CliText.Duration(d, "--ttl").TotalSeconds;
            var made = await c.CreateTokenAsync(request, cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(made));
            else
            {
                Console.WriteLine(made.Token);
                var expires = made.Info.ExpiresAt.Length > 0 ? $"expires {made.Info.ExpiresAt}" : "never expires";
                await Console.Error.WriteLineAsync(
                    $"token {made.Info.Name} created ({string.Join(", ", made.Info.Scopes)}; {expires}); it is not shown again");
            }
            return 0;
        }, ct));
        var ls = new Command("ls", "List tokens: name, scopes, when made, expiry, by whom (never the secret)");
        ls.SetAction((pr, ct) => api.RunAsync(pr, "token ls", async (c, t) =>
        {
            var reply = await c.ListTokensAsync(new V1.ListTokensRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["NAME", "SCOPES", "CREATED", "EXPIRES", "BY"], reply.Tokens.Select(k => new[]
            {
                k.Name, string.Join(",", k.Scopes), k.CreatedAt,
                k.Expired ? $"expired {k.ExpiresAt}" : k.ExpiresAt.Length > 0 ? k.ExpiresAt : "never", k.CreatedBy,
            }));
            return 0;
        }, ct));
        var rm = new Command("rm", "Revoke a token: refused from its next call on") { name };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "token rm", async (c, t) =>
        {
            await c.RevokeTokenAsync(new V1.RevokeTokenRequest { Name = pr.GetValue(name) }, cancellationToken: t);
            Console.WriteLine($"token {pr.GetValue(name)} revoked");
            return 0;
        }, ct));
        foreach (var c in new[] { create, ls, rm }) api.AddTo(c);
        return new Command("token", "API tokens of eru-core with scopes: read, deploy:APP, admin") { create, ls, rm };
    }
}
