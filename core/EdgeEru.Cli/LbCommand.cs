using System.CommandLine;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace EdgeEru.Cli;

/// <summary><c>eru lb</c>: the balancer's admin API from the command line (token from --token, ERU_LB_TOKEN or .dev/lb.token).</summary>
internal static class LbCommand
{
    public static Command Create()
    {
        var admin = new Option<string>("--admin")
        {
            Description = "Admin API URL of eru-lb",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_LB_ADMIN") ?? "http://127.0.0.1:9181", Recursive = true,
        };
        var token = new Option<string?>("--token")
        {
            Description = "Admin token (default: $ERU_LB_TOKEN, then .dev/lb.token)", Recursive = true,
        };
        var domain = new Argument<string>("domain") { Description = "Host name of the domain" };

        var ls = new Command("ls", "List domains");
        ls.SetAction((pr, ct) => CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Get, "/api/domains", null, ct));

        var get = new Command("get", "Show a domain's graph") { domain };
        get.SetAction((pr, ct) =>
            CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Get, $"/api/domains/{pr.GetValue(domain)}", null, ct));

        var file = new Argument<FileInfo>("graph.json") { Description = "The graph (docs/registry.md); - reads standard input" };
        var set = new Command("set", "Validate and store a domain's graph") { domain, file };
        set.SetAction(async (pr, ct) =>
        {
            var f = pr.GetValue(file)!;
            string body;
            if (f.Name == "-") body = await Console.In.ReadToEndAsync(ct);
            else if (!f.Exists)
            {
                await Console.Error.WriteLineAsync($"eru lb set: {f.FullName} does not exist");
                return 2;
            }
            else body = await File.ReadAllTextAsync(f.FullName, ct);
            return await CallAsync(
                pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Put, $"/api/domains/{pr.GetValue(domain)}", body, ct);
        });

        var rm = new Command("rm", "Delete a domain") { domain };
        rm.SetAction((pr, ct) =>
            CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Delete, $"/api/domains/{pr.GetValue(domain)}", null, ct));

        var method = new Option<string>("--method") { DefaultValueFactory = _ => "GET" };
        var path = new Option<string>("--path") { DefaultValueFactory = _ => "/" };
        var headers = new Option<string[]>("--header") { Description = "NAME=VALUE, repeatable" };
        var cookies = new Option<string[]>("--cookie") { Description = "NAME=VALUE, repeatable" };
        var query = new Option<string[]>("--query") { Description = "NAME=VALUE, repeatable" };
        var clientIp = new Option<string>("--client-ip") { DefaultValueFactory = _ => "127.0.0.1" };
        var explain = new Command("explain", "Why would this request go where it goes: the walk, the backend and its live workloads")
        {
            domain, method, path, headers, cookies, query, clientIp,
        };
        explain.SetAction(async (pr, ct) =>
        {
            Dictionary<string, string> h, c, q;
            try
            {
                (h, c, q) = (CliText.Pairs(pr.GetValue(headers), headers.Name), CliText.Pairs(pr.GetValue(cookies), cookies.Name),
                    CliText.Pairs(pr.GetValue(query), query.Name));
            }
            catch (FormatException ex)
            {
                return await CliText.Fail("lb explain", ex.Message, 2);
            }
            var body = JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["host"] = pr.GetValue(domain), ["method"] = pr.GetValue(method), ["path"] = pr.GetValue(path),
                ["headers"] = h, ["cookies"] = c, ["query"] = q, ["client_ip"] = pr.GetValue(clientIp),
            });
            return await CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Post, "/api/explain", body, ct);
        });

        var stats = new Command(
            "stats", "Hit counts per graph node and the destinations of each backend (in flight, ejected, failing check)");
        stats.SetAction((pr, ct) => CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Get, "/api/stats", null, ct));

        return new Command("lb", "The layer-7 balancer: domains and their rule graphs, TLS certificates")
        {
            admin, token, ls, get, set, rm, explain, stats, CertCommand(admin, token),
        };
    }

    /// <summary><c>eru lb cert ls [--json] | set NAME CERT.pem KEY.pem | rm NAME</c>: TLS certificates kept in the registry.</summary>
    private static Command CertCommand(Option<string> admin, Option<string?> token)
    {
        var name = new Argument<string>("name") { Description = "Name of the certificate (1-253 of A-Z a-z 0-9 . _ -)" };
        var json = new Option<bool>("--json") { Description = "Print eru-lb's answer as JSON" };
        var ls = new Command("ls",
            "Certificates eru-lb serves (registry and directory), and ACME domains: issuer, expiry, next renewal, last failure")
        {
            json,
        };
        ls.SetAction((pr, ct) => CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Get, "/api/certificates", null, ct,
            pr.GetValue(json) ? null : PrintCertificates));

        var certFile = new Argument<FileInfo>("certificate.pem") { Description = "PEM certificate, then its chain" };
        var keyFile = new Argument<FileInfo>("key.pem") { Description = "PEM private key" };
        var set = new Command("set", "Store a certificate and key in the registry (eru-lb checks the pair first)")
            { name, certFile, keyFile };
        set.SetAction(async (pr, ct) =>
        {
            foreach (var f in new[] { pr.GetValue(certFile)!, pr.GetValue(keyFile)! })
            {
                if (f.Exists) continue;
                await Console.Error.WriteLineAsync($"eru lb cert set: {f.FullName} does not exist");
                return 2;
            }
            var body = JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["certificate"] = await File.ReadAllTextAsync(pr.GetValue(certFile)!.FullName, ct),
                ["key"] = await File.ReadAllTextAsync(pr.GetValue(keyFile)!.FullName, ct),
            });
            return await CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Put,
                $"/api/certificates/{Uri.EscapeDataString(pr.GetValue(name)!)}", body, ct);
        });

        var rm = new Command("rm", "Delete a certificate from the registry") { name };
        rm.SetAction((pr, ct) => CallAsync(pr.GetValue(admin)!, pr.GetValue(token), HttpMethod.Delete,
            $"/api/certificates/{Uri.EscapeDataString(pr.GetValue(name)!)}", null, ct));

        return new Command("cert", "TLS certificates in the registry, served by SNI") { ls, set, rm };
    }

    /// <summary>
    /// <c>eru lb cert ls</c>: one row per certificate; for ACME ones the next renewal (or retry), and below the
    /// table why the last order of a domain failed.
    /// </summary>
    private static void PrintCertificates(string answer)
    {
        using var doc = JsonDocument.Parse(answer);
        string Text(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        string When(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.TryGetDateTimeOffset(out var t)
                ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) : "-";
        var rows = new List<string[]>();
        var failures = new List<string>();
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            var acme = Text(c, "acme_domain");
            var names = string.Join(",", c.GetProperty("names").EnumerateArray().Select(n => n.GetString()));
            var issuer = Text(c, "issuer") is { Length: > 0 } i ? i : acme.Length > 0 ? "(not issued yet)" : "-";
            var next = acme.Length == 0 ? "-" : c.TryGetProperty("next_renewal", out var n) && n.ValueKind == JsonValueKind.Null
                ? "at the next look" : When(c, "next_renewal");
            rows.Add([Text(c, "source"), names, issuer, When(c, "not_after"), next]);
            if (Text(c, "last_error") is { Length: > 0 } error)
                failures.Add($"{acme}: {c.GetProperty("failures").GetInt32()} failed order(s) in a row, last: {error}");
        }
        CliText.Table(["SOURCE", "NAMES", "ISSUER", "EXPIRES", "NEXT RENEWAL"], rows);
        foreach (var f in failures) Console.WriteLine(f);
    }

    private static async Task<int> CallAsync(
        string admin, string? token, HttpMethod method, string path, string? body, CancellationToken ct, Action<string>? print = null)
    {
        token = await CliText.TokenAsync(token, "ERU_LB_TOKEN", "lb.token", ct);
        if (token is null)
        {
            await Console.Error.WriteLineAsync(
                "eru lb: no admin token (--token, ERU_LB_TOKEN, or run inside a checkout with ./eru dev running)");
            return 2;
        }
        if (!Uri.TryCreate(admin, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
        {
            await Console.Error.WriteLineAsync($"eru lb: --admin \"{admin}\" is not an http(s) URL");
            return 2;
        }
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(10) };
        using var req = new HttpRequestMessage(method, path);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        try
        {
            using var resp = await http.SendAsync(req, ct);
            var text = await resp.Content.ReadAsStringAsync(ct);
            if (resp.IsSuccessStatusCode && print is not null) print(text);
            else Console.WriteLine(Pretty(text));
            return resp.IsSuccessStatusCode ? 0 : 1;
        }
        catch (HttpRequestException ex)
        {
            await Console.Error.WriteLineAsync($"eru lb: {admin}: {ex.Message}");
            return 1;
        }
    }

    private static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static string Pretty(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return JsonSerializer.Serialize(doc.RootElement, Indented);
        }
        catch (JsonException)
        {
            return json;
        }
    }
}
