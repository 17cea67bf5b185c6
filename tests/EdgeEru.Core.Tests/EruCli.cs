using System.Diagnostics;
using EdgeEru.TestSupport;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>The eru CLI as a separate process: its own build output (same configuration as these tests).</summary>
internal static class EruCli
{
    public static async Task<(int Code, string Output)> RunAsync(ITestOutputHelper output, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        psi.ArgumentList.Add(Path.Combine(Repo.Root, "core", "EdgeEru.Cli", "bin", configuration, "net10.0", "eru.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var text = await stdout + await stderr;
        output.WriteLine($"$ eru {string.Join(' ', args)}\n{text}");
        return (p.ExitCode, text);
    }
}
