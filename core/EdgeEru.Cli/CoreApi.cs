using System.CommandLine;
using System.Globalization;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
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
    public Option<bool> Json { get; } = new("--json") { Description = "Machine-readable output", Recursive = true };

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(Token);
        command.Options.Add(Json);
    }

    /// <summary>Runs <paramref name="call"/> with a client; refusals print the server's status and message.</summary>
    public async Task<int> RunAsync(ParseResult pr, string what, Func<V1.Core.CoreClient, CancellationToken, Task<int>> call, CancellationToken ct)
    {
        var token = pr.GetValue(Token) ?? Environment.GetEnvironmentVariable("ERU_TOKEN");
        var file = Path.Combine(".dev", "core.token");
        if (string.IsNullOrEmpty(token) && File.Exists(file)) token = (await File.ReadAllTextAsync(file, ct)).Trim();
        if (string.IsNullOrEmpty(token))
            return await Fail(what, "no API token (--token, ERU_TOKEN, or run inside a checkout with ./eru dev running)", 2);
        if (!Uri.TryCreate(pr.GetValue(Url), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            return await Fail(what, $"--core \"{pr.GetValue(Url)}\" is not an http(s) URL", 2);
        using var channel = GrpcChannel.ForAddress(url);
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
            return await Fail(what, $"eru-core at {url} did not answer ({ex.Status.Detail})", 1);
        }
        catch (RpcException ex)
        {
            return await Fail(what, $"{ex.StatusCode}: {ex.Status.Detail}", ex.StatusCode is StatusCode.InvalidArgument or StatusCode.Unauthenticated ? 2 : 1);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or IOException)
        {
            return await Fail(what, ex.Message, 2);
        }
    }

    public static async Task<int> Fail(string what, string message, int code)
    {
        await Console.Error.WriteLineAsync($"eru {what}: {message}");
        return code;
    }

    /// <summary>"NAME=VALUE" pairs from a repeatable option; a pair without '=' is an error naming the option.</summary>
    public static Dictionary<string, string> Pairs(IEnumerable<string>? values, string option, bool valueOptional = false)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in values ?? [])
        {
            var eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 && !(valueOptional && eq < 0 && kv.Length > 0)) throw new FormatException($"{option} \"{kv}\" must be NAME=VALUE");
            d[eq < 0 ? kv : kv[..eq]] = eq < 0 ? "" : kv[(eq + 1)..];
        }
        return d;
    }

    /// <summary>Bytes from "512M", "2G", "64k", "1048576" (binary units).</summary>
    public static long Size(string? text, string option)
    {
        if (string.IsNullOrWhiteSpace(text)) return 0;
        var t = text.Trim().TrimEnd('b', 'B').TrimEnd('i');
        var unit = char.ToUpperInvariant(t[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1L };
        var number = unit == 1 ? t : t[..^1];
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n < 0)
            throw new FormatException($"{option} \"{text}\" is not a size (e.g. 512M, 2G)");
        return (long)(n * unit);
    }

    public static string Bytes(long b) => b >= 1L << 30 ? $"{b / (double)(1L << 30):0.#}G" : b >= 1L << 20 ? $"{b / (double)(1L << 20):0.#}M" : b >= 1024 ? $"{b / 1024.0:0.#}K" : b.ToString(CultureInfo.InvariantCulture);
}
