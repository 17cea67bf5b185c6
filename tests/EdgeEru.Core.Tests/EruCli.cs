using System.Diagnostics;
using EdgeEru.TestSupport;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>The eru CLI as a separate process: its own build output (same configuration as these tests).</summary>
internal static class EruCli
{
    public static async Task<(int Code, string Output)> RunAsync(ITestOutputHelper output, params string[] args)
    {
        var (code, stdout, stderr) = await RunAsync(output, null, args);
        return (code, stdout + stderr);
    }

    /// <summary>Runs eru with <paramref name="stdin"/> on its standard input (null: none); stdout and stderr apart.</summary>
    public static Task<(int Code, string Stdout, string Stderr)> RunAsync(
        ITestOutputHelper output, byte[]? stdin, params string[] args) => RunAsync(output, stdin, null, args);

    /// <summary>As above, with environment variables set (or removed, when null) for eru.</summary>
    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(
        ITestOutputHelper output, byte[]? stdin, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        using var p = Start(args, stdin is not null, environment);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await p.StandardInput.BaseStream.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var (o, e) = (await stdout, await stderr);
        output.WriteLine($"$ eru {string.Join(' ', args)}\n{o}{e}");
        return (p.ExitCode, o, e);
    }

    /// <summary>Starts eru and returns at once (the caller reads its output and may signal it).</summary>
    public static Process Start(IEnumerable<string> args, bool stdin = false, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>()) psi.Environment[name] = value;
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        psi.ArgumentList.Add(Path.Combine(Repo.Root, "core", "EdgeEru.Cli", "bin", configuration, "net10.0", "eru.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }
}
