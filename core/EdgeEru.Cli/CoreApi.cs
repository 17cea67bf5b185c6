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
    public Option<string> Url { get; } = new("--core") { Description = "eru-core's API URL", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ERU_CORE") ?? "http://127.0.0.1:5001", Recursive = true };
    public Option<string?> Token { get; } = new("--token") { Description = "API token (default: $ERU_TOKEN, then .dev/core.token)", Recursive = true };
    public Option<string?> Ca { get; } = new("--core-ca") { Description = "PEM CA that eru-core's https certificate chains to (default: $ERU_CORE_CA, else the system's)", Recursive = true };
    public Option<bool> Json { get; } = new("--json") { Description = "Machine-readable output", Recursive = true };

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

    /// <summary>Runs <paramref name="call"/> with a client; refusals print the server's status and message.</summary>
    public async Task<int> RunAsync(ParseResult pr, string what, Func<V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        var token = await CliText.TokenAsync(pr.GetValue(Token), "ERU_TOKEN", "core.token", ct);
        if (token is null)
            return await CliText.Fail(what, "no API token (--token, ERU_TOKEN, or run inside a checkout with ./eru dev running)", 2);
        if (!Uri.TryCreate(pr.GetValue(Url), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            return await CliText.Fail(what, $"--core \"{pr.GetValue(Url)}\" is not an http(s) URL", 2);
        var caFile = pr.GetValue(Ca) ?? Environment.GetEnvironmentVariable("ERU_CORE_CA");
        System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ca = null;
        if (caFile is not null)
        {
            try
            {
                ca = PemTls.LoadRoots(caFile, "--core-ca");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or System.Security.Cryptography.CryptographicException)
            {
                return await CliText.Fail(what, ex is ArgumentException ? ex.Message : $"--core-ca {caFile}: {ex.Message}", 2);
            }
        }
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = Handler(ca) });
        var client = new V1.Core.CoreClient(channel.Intercept(m =>
        {
            m.Add("authorization", "Bearer " + token);
            return m;
        }));
        try
        {
            return await call(client, ct);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
        {
            return await CliText.Fail(what, $"eru-core at {url} did not answer ({ex.Status.Detail})", 1);
        }
        catch (RpcException ex)
        {
            return await CliText.Fail(what, $"{ex.StatusCode}: {ex.Status.Detail}", ex.StatusCode is StatusCode.InvalidArgument or StatusCode.Unauthenticated ? 2 : 1);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or IOException)
        {
            return await CliText.Fail(what, ex.Message, 2);
        }
    }
}
