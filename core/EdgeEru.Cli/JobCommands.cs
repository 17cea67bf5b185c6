using System.CommandLine;
using System.Formats.Tar;
using System.IO.Pipelines;
using EdgeEru.Core.Files;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru run</c> (one-off jobs) and <c>eru cp</c> (files in and out of workloads), through eru-core's API.</summary>
internal static class JobCommands
{
    /// <summary>Exit code of <c>eru run</c> when the job was killed for running too long (as timeout(1) says it).</summary>
    private const int TimedOutExit = 124;

    public static IEnumerable<Command> Create()
    {
        var api = new CoreApi();
        var spec = new DeployCommands.SpecOptions();
        var command = new Argument<string[]>("command") { Description = "The job's command, after --", Arity = ArgumentArity.OneOrMore };
        var timeout = new Option<int>("--timeout") { Description = "Kill the job after this many seconds (0: no limit)" };
        var keep = new Option<bool>("--keep") { Description = "Keep the exited container and its record (default: removed)" };
        timeout.Validators.Add(r =>
        {
            if (r.GetValue(timeout) < 0) r.AddError("--timeout must not be negative");
        });
        var run = new Command("run", "Run a one-off job with an app's image, network, env, volumes and secrets; streams its output and " +
            $"exits with its exit code ({TimedOutExit} when it timed out). Ctrl-C kills it. Jobs never appear in DNS or the LB.")
            { timeout, keep };
        foreach (var s in spec.All.Where(s => s != spec.Count && s != spec.Strategy && s != spec.PerNodeLimit)) DeployCommands.Add(run, s);
        run.Arguments.Add(command);
        run.SetAction((pr, ct) => api.RunAsync(pr, "run", async (c, t) =>
        {
            var request = await spec.RequestAsync(pr, t);
            request.Command.Clear();
            request.Command.Add(pr.GetValue(command)!);
            request.Count = 1;
            using var call = c.Run(
                new V1.RunRequest { Request = request, TimeoutS = pr.GetValue(timeout), Keep = pr.GetValue(keep) }, cancellationToken: t);
            await using var stdout = Console.OpenStandardOutput();
            await using var stderr = Console.OpenStandardError();
            await foreach (var e in call.ResponseStream.ReadAllAsync(t))
            {
                switch (e.EventCase)
                {
                    case V1.RunEvent.EventOneofCase.Started:
                        await Console.Error.WriteLineAsync($"eru run: {e.Started.Name} on {e.Started.Node}");
                        break;
                    case V1.RunEvent.EventOneofCase.Stdout:
                        await stdout.WriteAsync(e.Stdout.Memory, t);
                        await stdout.FlushAsync(t);
                        break;
                    case V1.RunEvent.EventOneofCase.Stderr:
                        await stderr.WriteAsync(e.Stderr.Memory, t);
                        await stderr.FlushAsync(t);
                        break;
                    case V1.RunEvent.EventOneofCase.Exited:
                        var x = e.Exited;
                        if (x.Error.Length > 0) await Console.Error.WriteLineAsync($"eru run: {x.Error}");
                        if (!x.Removed && pr.GetValue(keep)) await Console.Error.WriteLineAsync("eru run: kept (eru rm it when done)");
                        return x.TimedOut ? TimedOutExit : x.ExitCode is >= 0 and <= 255 ? (int)x.ExitCode : 1;
                }
            }
            return await CliText.Fail("run", "eru-core ended the call without the job's exit code", 1);
        }, ct));

        var source = new Argument<string>("source") { Description = "WORKLOAD:/path, or a local path (- for a tar on stdin)" };
        var destination = new Argument<string>("destination") { Description = "A local path (- for a tar on stdout), or WORKLOAD:/path" };
        var cp = new Command("cp", "Copy files out of or into a workload's container (tar through the Docker API, like docker cp)")
            { source, destination };
        cp.SetAction((pr, ct) => api.RunAsync(pr, "cp", async (c, t) =>
        {
            var (from, to) = (pr.GetValue(source)!, pr.GetValue(destination)!);
            var (fromRemote, toRemote) = (Remote(from), Remote(to));
            if ((fromRemote is null) == (toRemote is null))
                throw new FormatException("exactly one of source and destination must be WORKLOAD:/path");
            if (fromRemote is { } r) await CopyOutAsync(c, r.Workload, r.Path, to, t);
            else await CopyInAsync(c, from, toRemote!.Value.Workload, toRemote.Value.Path, t);
            return 0;
        }, ct));

        api.AddTo(run);
        api.AddTo(cp);
        return [run, cp];
    }

    /// <summary>"web-3f2a:/etc/x" → (workload, path); null for local paths ("./a:b", "/tmp/x", "-").</summary>
    private static (string Workload, string Path)? Remote(string arg)
    {
        var colon = arg.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || arg.StartsWith('/') || arg.StartsWith('.')) return null;
        var path = arg[(colon + 1)..];
        if (!path.StartsWith('/')) throw new FormatException($"\"{arg}\": the path in the container must be absolute (WORKLOAD:/path)");
        return (arg[..colon], path);
    }

    private static async Task CopyOutAsync(V1.Core.CoreClient client, string workload, string path, string local, CancellationToken ct)
    {
        using var call = client.CopyFrom(new V1.CopyFromRequest { Workload = workload, Path = path }, cancellationToken: ct);
        var pipe = new Pipe();
        var receive = Task.Run(async () =>
        {
            try
            {
                await foreach (var chunk in call.ResponseStream.ReadAllAsync(ct)) await pipe.Writer.WriteAsync(chunk.Data.Memory, ct);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
                throw;
            }
        }, ct);
        await using var tar = pipe.Reader.AsStream();
        if (local == "-")
        {
            await using var stdout = Console.OpenStandardOutput();
            await tar.CopyToAsync(stdout, ct);
        }
        else if (Directory.Exists(local))
            await TarFile.ExtractToDirectoryAsync(tar, local, overwriteFiles: true, ct);
        else
        {
            // A new name in an existing folder: the archive's top entry is renamed on the way.
            var full = Path.GetFullPath(local);
            var parent = Path.GetDirectoryName(full)!;
            if (!Directory.Exists(parent)) throw new DirectoryNotFoundException($"{parent} does not exist");
            var renamed = new Pipe();
            var rename = Task.Run(async () =>
            {
                try
                {
                    await Archives.RenameTopAsync(tar, Path.GetFileName(full), renamed.Writer.AsStream(leaveOpen: true), ct);
                    await renamed.Writer.CompleteAsync();
                }
                catch (Exception ex)
                {
                    await renamed.Writer.CompleteAsync(ex);
                    throw;
                }
            }, ct);
            // .NET refuses entries and links that would land outside the folder.
            await TarFile.ExtractToDirectoryAsync(renamed.Reader.AsStream(), parent, overwriteFiles: true, ct);
            await rename;
        }
        await receive;
    }

    private static async Task CopyInAsync(V1.Core.CoreClient client, string local, string workload, string path, CancellationToken ct)
    {
        using var call = client.CopyTo(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new V1.CopyToRequest { Workload = workload, Path = path }, ct);
        var pipe = new Pipe();
        var pack = Task.Run(async () =>
        {
            try
            {
                await using var output = pipe.Writer.AsStream(leaveOpen: true);
                if (local == "-")
                {
                    await using var stdin = Console.OpenStandardInput();
                    await stdin.CopyToAsync(output, ct);
                }
                else if (Directory.Exists(local)) await TarFile.CreateFromDirectoryAsync(local, output, includeBaseDirectory: true, ct);
                else if (File.Exists(local))
                {
                    await using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
                    await tar.WriteEntryAsync(local, Path.GetFileName(Path.GetFullPath(local)), ct);
                }
                else throw new FileNotFoundException($"{local} does not exist");
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
                throw;
            }
        }, ct);
        var buffer = new byte[64 * 1024];
        await using (var tar = pipe.Reader.AsStream())
        {
            int n;
            while ((n = await tar.ReadAsync(buffer, ct)) > 0)
                await call.RequestStream.WriteAsync(new V1.CopyToRequest { Data = ByteString.CopyFrom(buffer, 0, n) }, ct);
        }
        await pack;
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;
    }
}
