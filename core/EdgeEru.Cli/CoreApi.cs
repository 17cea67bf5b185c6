using System.CommandLine;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using EdgeEru.Registry.Tls;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary>
/// How the CLI reaches eru-core: <c>--core</c> (default $ERU_CORE, then http://127.0.0.1:5001) and a
/// bearer token (<c>--token</c>, $ERU_TOKEN, then .dev/core.token as <c>./eru dev</c> writes it).
/// </summary>
internal sealed class CoreApi
{
    public Option<string> Url { get; } = new("--core")
    {
        Description = "eru-core's API URL, or several separated by commas (replicas: the next is tried when one cannot be reached)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_CORE") ?? "http://127.0.0.1:5001", Recursive = true,
    };
    public Option<string?> Token { get; } = new("--token")
    {
        Description = "API token (default: $ERU_TOKEN, then .dev/core.token)", Recursive = true,
    };
    public Option<string?> Ca { get; } = new("--core-ca")
    {
        Description = "PEM CA that eru-core's https certificate chains to (default: $ERU_CORE_CA, else the system's)", Recursive = true,
    };
    public Option<bool> Json { get; } = new("--json") { Description = "Machine-readable output", Recursive = true };
    /// <summary>A global option (on the root command, recursive): <c>eru --dc NAME ps</c> as well as <c>eru ps --dc NAME</c>.</summary>
    public static Option<string?> Datacenter { get; } = new("--dc")
    {
        Description = "Talk to this datacenter's eru-core (URL, token and CA from $ERU_DATACENTERS, else "
            + "~/.config/eru/datacenters.json); default $ERU_DC, else --core",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_DC") is { Length: > 0 } dc ? dc : null, Recursive = true,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(Token);
        command.Options.Add(Ca);
        command.Options.Add(Json);
    }

    /// <summary>HTTP/2 to eru-core; with a private CA, its certificate must chain to that CA (the system store is not asked).</summary>
    private static SocketsHttpHandler Handler(System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ca)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
        if (ca is not null) handler.SslOptions.RemoteCertificateValidationCallback = PemTls.TrustOnly(ca);
        return handler;
    }

    /// <summary>
    /// Runs <paramref name="call"/> with a client of eru-core (--dc's, else --core's); refusals print the server's status
    /// and message.
    /// </summary>
    public async Task<int> RunAsync(
        ParseResult pr, string what, Func<V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        if (pr.GetValue(Datacenter) is { } dc)
        {
            var (datacenters, problem) = DatacentersFile.Load();
            if (problem is not null) return await CliText.Fail(what, $"--dc {dc}: {problem}", 2);
            if (datacenters.FirstOrDefault(d => d.Name == dc) is not { } entry)
                return await CliText.Fail(what, $"--dc {dc}: {DatacentersFile.PathOf()} lists no such datacenter "
                    + $"(it lists {string.Join(", ", datacenters.Select(d => d.Name))})", 2);
            return await RunOnAsync(entry, what, call, ct);
        }
        var token = await CliText.TokenAsync(pr.GetValue(Token), "ERU_TOKEN", "core.token", ct);
        return await RunOnAsync(what, pr.GetValue(Url)!, token, pr.GetValue(Ca) ?? Environment.GetEnvironmentVariable("ERU_CORE_CA"),
            call, ct);
    }

    /// <summary>
    /// Runs <paramref name="call"/> once per datacenter of the datacenters file, in its order (one that does not answer is
    /// said and passed over); the worst exit code.
    /// </summary>
    public static async Task<int> RunEveryDatacenterAsync(
        string what, Func<string, V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        var (datacenters, problem) = DatacentersFile.Load();
        if (problem is not null) return await CliText.Fail(what, $"--all-dcs: {problem}", 2);
        var worst = 0;
        foreach (var entry in datacenters)
            worst = Math.Max(worst, await RunOnAsync(entry, $"{what} (datacenter {entry.Name})", (c, t) => call(entry.Name, c, t), ct));
        return worst;
    }

    private static async Task<int> RunOnAsync(
        DatacentersFile.Entry dc, string what, Func<V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        string? token;
        try
        {
            token = await DatacentersFile.TokenAsync(dc, ct);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return await CliText.Fail(what, $"datacenter {dc.Name}: token_file: {ex.Message}", 2);
        }
        return await RunOnAsync(what, dc.Core, token, dc.Ca, call, ct);
    }

    private static async Task<int> RunOnAsync(string what, string coreUrls, string? token, string? caFile,
        Func<V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        if (token is null)
            return await CliText.Fail(what, "no API token (--token, ERU_TOKEN, or run inside a checkout with ./eru dev running)", 2);
        var urls = new List<Uri>();
        foreach (var text in coreUrls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
                return await CliText.Fail(what, $"--core \"{text}\" is not an http(s) URL", 2);
            urls.Add(u);
        }
        if (urls.Count == 0) return await CliText.Fail(what, "--core names no URL", 2);
        System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ca = null;
        if (caFile is not null)
        {
            try
            {
                ca = PemTls.LoadRoots(caFile, "--core-ca");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException
                or System.Security.Cryptography.CryptographicException)
            {
                return await CliText.Fail(what, ex is ArgumentException ? ex.Message : $"--core-ca {caFile}: {ex.Message}", 2);
            }
        }
        // Replicas in order: the first that answers a cheap call is the one used, before the command reads
        // anything (stdin, a build context), so nothing is ever sent twice.
        for (var i = 0; ; i++)
        {
            using var channel = GrpcChannel.ForAddress(urls[i], new GrpcChannelOptions { HttpHandler = Handler(ca) });
            var client = new V1.Core.CoreClient(channel.Intercept(m =>
            {
                m.Add("authorization", "Bearer " + token);
                return m;
            }));
            try
            {
                if (i + 1 < urls.Count)
                    await client.ListPodsAsync(new V1.ListPodsRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: ct);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                await Console.Error.WriteLineAsync(
                    $"eru {what}: eru-core at {urls[i]} did not answer ({ex.Status.Detail}); trying {urls[i + 1]}");
                continue;
            }
            catch (RpcException)
            {
                // It answered (a refusal is an answer): the command itself will say what is wrong.
            }
            try
            {
                return await call(client, ct);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
            {
                return await CliText.Fail(what, $"eru-core at {urls[i]} did not answer ({ex.Status.Detail})", 1);
            }
            catch (RpcException ex)
            {
                return await CliText.Fail(what, $"{ex.StatusCode}: {ex.Status.Detail}",
                    ex.StatusCode is StatusCode.InvalidArgument or StatusCode.Unauthenticated ? 2 : 1);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or IOException)
            {
                return await CliText.Fail(what, ex.Message, 2);
            }
        }
    }
}
