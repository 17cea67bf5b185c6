using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;
using EdgeEru.Mimiron.Targets;
using EdgeEru.Registry.Model;
using EdgeEru.Ssh.Connection;

namespace EdgeEru.Mimiron.Docker;

/// <summary>
/// What an exec did: its exit code and the bytes that went each way; <see cref="Interrupted"/> when the session ended
/// first (the client left, or a limit cancelled it), so there is no exit code.
/// </summary>
/// <summary>How a command ended; <paramref name="NotStarted"/>: nothing ran (the engine or the container could not take it).</summary>
public sealed record ExecResult(int ExitCode, long BytesIn, long BytesOut, string? Problem, bool Interrupted = false,
    bool NotStarted = false);

/// <summary>
/// Runs an SSH session as a Docker exec in the target container on its node: a TTY with TERM and the window size
/// (resized on window-change), stdin with EOF passed on, stdout and stderr apart without a TTY, and the exit code
/// from exec inspect.
/// </summary>
public sealed class ExecRunner(DockerClients clients, ILogger<ExecRunner> log)
{
    // A login shell: bash when the image has it, else sh.
    private const string ShellScript = "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l";

    // Docker before API 1.42 cannot size an exec's terminal at creation, only resize it once it runs: with a pty the
    // command first waits (at most a second) for that resize, so it never sees a 0x0 terminal.
    private const string AwaitTerminalSize =
        "i=0; while [ \"$(stty size 2>/dev/null)\" = \"0 0\" ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i+1)); done; ";

    /// <summary>Runs <paramref name="command"/> (null: a login shell) for the session; <paramref name="touch"/> marks activity.</summary>
    public async Task<ExecResult> RunAsync(SshSession session, ResolvedTarget target, SshAppAccess access, string? command,
        Func<long> touch, Audit.AsciicastRecorder? recorder, CancellationToken ct)
    {
        var client = clients.For(target.Node.Endpoint);
        var tty = session.Pty is not null;
        var env = new List<string>();
        if (session.Pty is { } pty) env.Add("TERM=" + pty.Term);
        foreach (var (k, v) in session.Environment)
            if (k == "LANG" || k.StartsWith("LC_", StringComparison.Ordinal)) env.Add($"{k}={v}");
        string exec;
        try
        {
            var created = await client.Exec.ExecCreateContainerAsync(target.Workload.Id, new ContainerExecCreateParameters
            {
                AttachStdin = true, AttachStdout = true, AttachStderr = true, Tty = tty, Env = env, User = access.User ?? "",
                Cmd = ["/bin/sh", "-c", (tty ? AwaitTerminalSize : "") + (command ?? ShellScript)],
            }, ct);
            exec = created.ID;
        }
        catch (DockerContainerNotFoundException)
        {
            return new ExecResult(1, 0, 0, $"instance {target.Workload.Ident} is gone (its container no longer exists)", NotStarted: true);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict)
        {
            return new ExecResult(1, 0, 0, $"instance {target.Workload.Ident} is not running", NotStarted: true);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or System.Net.Sockets.SocketException or DockerApiException)
        {
            return new ExecResult(1, 0, 0, $"node {target.Node.Name}'s Docker engine did not answer: {e.Message}", NotStarted: true);
        }

        MultiplexedStream stream;
        try
        {
            stream = await client.Exec.StartAndAttachContainerExecAsync(exec, tty, ct);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or System.Net.Sockets.SocketException or DockerApiException)
        {
            // Created but not started (the engine went away in between, e.g. while it shuts down): nothing ran.
            return new ExecResult(1, 0, 0, $"node {target.Node.Name}'s Docker engine did not start the command: {e.Message}",
                NotStarted: true);
        }
        using var _ = stream;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long bytesIn = 0, bytesOut = 0;

        // The exec starts a moment after the attach: a resize sent too early fails, so the first size is retried;
        // input waits for it, so what is typed first already runs in a terminal of the right size.
        var sized = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resizes = Task.Run(async () =>
        {
            try
            {
                if (session.Pty is null) return;
                var size = session.Pty.Size;
                for (var attempt = 0; attempt < 50 && !await TryResizeAsync(client, exec, size, stop.Token); attempt++)
                    await Task.Delay(20, stop.Token);
                sized.TrySetResult();
                await foreach (var s in session.Resizes.ReadAllAsync(stop.Token))
                {
                    recorder?.Resize(s.Columns, s.Rows);
                    await TryResizeAsync(client, exec, s, stop.Token);
                }
            }
            finally
            {
                sized.TrySetResult();
            }
        }, stop.Token);

        var signals = Task.Run(async () =>
        {
            await foreach (var name in session.Signals.ReadAllAsync(stop.Token))
            {
                bool sent;
                try
                {
                    var inspect = await client.Exec.InspectContainerExecAsync(exec, stop.Token);
                    sent = inspect.Running && LocalSignals.IsLocal(target.Node.Endpoint.Address) && LocalSignals.TrySend(inspect.Pid, name);
                }
                catch (Exception e) when (e is DockerApiException or HttpRequestException)
                {
                    sent = false;
                }
                log.LogInformation("signal {Signal} for exec {Exec} in {Ident}: {Outcome}", name, exec, target.Workload.Ident,
                    sent ? "sent" : "not delivered (remote engine, unknown signal or process gone)");
            }
        }, stop.Token);

        var stdin = Task.Run(async () =>
        {
            await sized.Task;
            var buf = new byte[32 * 1024];
            int n;
            while ((n = await session.Input.ReadAsync(buf, stop.Token)) > 0)
            {
                await stream.WriteAsync(buf, 0, n, stop.Token);
                bytesIn += n;
                touch();
            }
            // stdin EOF reaches the process; a terminal has no half-close (sshd leaves a pty open too), and closing the
            // attach's write side of a TTY exec would end its output.
            if (!tty) stream.CloseWrite();
        }, stop.Token);

        try
        {
            var buf = new byte[32 * 1024];
            while (true)
            {
                var r = await stream.ReadOutputAsync(buf, 0, buf.Length, ct);
                if (r.EOF) break;
                var sink = r.Target == MultiplexedStream.TargetStream.StandardError ? session.Error : session.Output;
                recorder?.Output(buf.AsSpan(0, r.Count));
                await sink.WriteAsync(buf.AsMemory(0, r.Count), ct);
                bytesOut += r.Count;
                touch();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            await HangUpAsync(client, exec, target);
            return new ExecResult(255, bytesIn, bytesOut, null, Interrupted: true);
        }
        finally
        {
            await stop.CancelAsync();
            await Quietly(stdin);
            await Quietly(resizes);
            await Quietly(signals);
        }

        // The output ends as the process does; inspect may say running for a moment longer.
        for (var i = 0; i < 100; i++)
        {
            var inspect = await client.Exec.InspectContainerExecAsync(exec, ct);
            if (!inspect.Running) return new ExecResult((int)inspect.ExitCode, bytesIn, bytesOut, null);
            await Task.Delay(20, ct);
        }
        return new ExecResult(255, bytesIn, bytesOut, "the command's exit code could not be read");
    }

    /// <summary>
    /// A session cut short leaves its process running (Docker cannot stop an exec): like sshd closing a terminal, the
    /// gateway sends it SIGHUP when the engine is local.
    /// </summary>
    private async Task HangUpAsync(DockerClient client, string exec, ResolvedTarget target)
    {
        if (!LocalSignals.IsLocal(target.Node.Endpoint.Address)) return;
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var inspect = await client.Exec.InspectContainerExecAsync(exec, cts.Token);
            if (inspect.Running && LocalSignals.TrySend(inspect.Pid, "HUP"))
                log.LogInformation("session cut short: sent SIGHUP to exec {Exec} in {Ident}", exec, target.Workload.Ident);
        }
        catch (Exception e) when (e is DockerApiException or HttpRequestException or OperationCanceledException or IOException)
        {
            log.LogDebug("could not hang up exec {Exec}: {Error}", exec, e.Message);
        }
    }

    private async Task<bool> TryResizeAsync(DockerClient client, string exec, TerminalSize size, CancellationToken ct)
    {
        try
        {
            await client.Exec.ResizeContainerExecTtyAsync(exec,
                new ContainerResizeParameters { Width = size.Columns, Height = size.Rows }, ct);
            return true;
        }
        catch (DockerApiException e)
        {
            log.LogDebug("resize of exec {Exec} to {Columns}x{Rows} failed: {Error}", exec, size.Columns, size.Rows, e.Message);
            return false;
        }
    }

    private static async Task Quietly(Task t)
    {
        try
        {
            await t;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // the session or the exec ended first
        }
    }
}
