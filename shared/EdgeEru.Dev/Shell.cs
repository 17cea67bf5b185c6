using System.Diagnostics;

namespace EdgeEru.Dev;

/// <summary>Runs a short command (ip, docker, ...) to completion; a failure says what ran and what it printed.</summary>
public static class Shell
{
    public static async Task<string> RunAsync(
        string program, IEnumerable<string> args, byte[]? stdin = null, IReadOnlyDictionary<string, string>? environment = null,
        TimeSpan? timeout = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await p.StandardInput.BaseStream.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', psi.ArgumentList)} did not finish in time");
        }
        if (p.ExitCode != 0)
            throw new CommandFailedException(
                $"{program} {string.Join(' ', psi.ArgumentList)} exited with {p.ExitCode}: {(await stderr).Trim()} {(await stdout).Trim()}",
                p.ExitCode);
        return await stdout;
    }
}

public sealed class CommandFailedException(string message, int exitCode = -1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
