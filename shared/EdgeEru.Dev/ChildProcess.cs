using System.Diagnostics;

namespace EdgeEru.Dev;

/// <summary>
/// A program the local cluster runs: started with its arguments, its output kept (the last lines, and
/// optionally passed on line by line), stopped with SIGTERM and, if it lingers, SIGKILL.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private ChildProcess(Process process) => _process = process;

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public static ChildProcess Start(string program, IEnumerable<string> args, Action<string>? onLine = null,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var child = new ChildProcess(new Process { StartInfo = psi });
        child._process.OutputDataReceived += (_, e) => child.Remember(e.Data, onLine);
        child._process.ErrorDataReceived += (_, e) => child.Remember(e.Data, onLine);
        child._process.Start();
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The last lines the program printed (for error messages).</summary>
    public string OutputTail()
    {
        lock (_tail) return string.Join('\n', _tail);
    }

    /// <summary>Waits until the program exited and its output was read to the end (every line passed on).</summary>
    public Task WaitForExitAsync(CancellationToken cancellationToken = default) => _process.WaitForExitAsync(cancellationToken);

    /// <summary>Stops the program: SIGTERM (or SIGKILL with <paramref name="kill"/>, like a crash), then waits.</summary>
    public async Task StopAsync(bool kill = false, TimeSpan? grace = null)
    {
        if (_process.HasExited) return;
        if (kill) _process.Kill(entireProcessTree: true);
        else Posix.Terminate(_process.Id);
        using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    private void Remember(string? line, Action<string>? onLine)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 40) _tail.Dequeue();
        }
        onLine?.Invoke(line);
    }

    public ValueTask DisposeAsync() => DisposeAsync(kill: false);

    public async ValueTask DisposeAsync(bool kill)
    {
        await StopAsync(kill);
        _process.Dispose();
    }
}
