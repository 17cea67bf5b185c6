using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using EdgeEru.Core.Logs;
using EdgeEru.Registry.Model;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru logs [-f] [--tail N] APP[.ENTRYPOINT]</c>: the app's output from every agent hosting it, relayed by eru-core
/// (which finds the agents and holds their token): tails merged by time, then live lines as they come.
/// </summary>
public static class LogsCommand
{
    public static Command Create()
    {
        var api = new CoreApi();
        var target = new Argument<string>("app") { Description = "APP or APP.ENTRYPOINT" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep following new lines" };
        var tail = new Option<int>("--tail", "-n")
        {
            Description = "Lines from before now, per agent (merged by time)", DefaultValueFactory = _ => 20,
        };
        tail.Validators.Add(r =>
        {
            if (r.GetValue(tail) is < 0 or > 100_000) r.AddError("--tail must be between 0 and 100000");
        });
        var cmd = new Command("logs", "Show an app's container output from the agents hosting it (through eru-core)")
            { target, follow, tail };
        api.AddTo(cmd); // --json: the agents' JSON records as they are
        LegacyEtcdOptions.AddTo(cmd);
        cmd.SetAction((pr, ct) => api.RunAsync(pr, "logs", async (c, t) =>
        {
            var (app, entrypoint) = Split(pr.GetValue(target)!)
                ?? throw new CliException($"\"{pr.GetValue(target)}\" is not APP or APP.ENTRYPOINT (DNS labels)");
            var json = pr.GetValue(api.Json);
            using var call = c.Logs(new V1.LogsRequest
            {
                App = app, Entrypoint = entrypoint ?? "", Tail = pr.GetValue(tail), Follow = pr.GetValue(follow),
            }, cancellationToken: t);
            try
            {
                await foreach (var e in call.ResponseStream.ReadAllAsync(t))
                {
                    if (e.EventCase == V1.LogEvent.EventOneofCase.Record) await Print(Console.Out, e.Record, json);
                    else await Console.Error.WriteLineAsync("eru logs: " + e.Note);
                }
            }
            catch (Exception ex) when (t.IsCancellationRequested && ex is OperationCanceledException or RpcException)
            {
                // Ctrl-C ends a follow: not a failure.
            }
            return 0;
        }, ct));
        return cmd;
    }

    private static (string App, string? Entrypoint)? Split(string target)
    {
        var parts = target.Split('.');
        if (parts.Length > 2 || !parts.All(Names.IsLabel)) return null;
        return (parts[0], parts.Length == 2 ? parts[1] : null);
    }

    /// <summary>Without eru-core: etcd read directly and the agents asked with their own token (the agents' tests use it).</summary>
    public sealed record LogsRequest(string Target, bool Follow, int Tail, bool Json, string Etcd, string Prefix, string? Token);

    /// <summary>Reads the app's logs as eru-core does (<see cref="AgentLogs"/>), with this process's own registry view.</summary>
    public static async Task<int> RunAsync(LogsRequest req, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (Split(req.Target) is not { } parts)
        {
            await stderr.WriteLineAsync($"eru logs: \"{req.Target}\" is not APP or APP.ENTRYPOINT (DNS labels)");
            return 2;
        }
        var (app, entrypoint) = parts;
        if (string.IsNullOrEmpty(req.Token))
        {
            await stderr.WriteLineAsync("eru logs: no agent token");
            return 2;
        }
        var (view, code) = await RegistryView.OpenAsync("logs", req.Etcd, req.Prefix, stderr, ct);
        if (view is null) return code;
        await using var owned = view;
        var outcome = await AgentLogs.RunAsync(new AgentLogQuery(app, entrypoint, req.Tail, req.Follow), req.Token, view.Watcher,
            async (line, more) =>
            {
                await Print(stdout, line, req.Json);
                if (!more) await stdout.FlushAsync(CancellationToken.None);
            },
            note => stderr.WriteLineAsync("eru logs: " + note), ct);
        if (outcome == AgentLogOutcome.NoAgent) await stderr.WriteLineAsync($"eru logs: no agent to ask about {req.Target}");
        return outcome == AgentLogOutcome.Done ? 0 : 1;
    }

    private static Task Print(TextWriter w, string json, bool raw)
    {
        if (raw) return w.WriteLineAsync(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            string S(string name) => r.TryGetProperty(name, out var v) ? v.GetString() ?? "" : "";
            var time = r.TryGetProperty("time", out var t) && t.TryGetDateTimeOffset(out var dt)
                ? dt.UtcDateTime.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)
                : "--:--:--.---";
            var err = S("stream") == "stderr" ? " !" : "";
            return w.WriteLineAsync($"{time} {S("entrypoint")}.{S("ident")}@{S("node")}{err} {S("line")}");
        }
        catch (JsonException)
        {
            return w.WriteLineAsync(json);
        }
    }
}
