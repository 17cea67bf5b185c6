using EdgeEru.Core.Logs;
using EdgeEru.Registry.Model;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>The agents' token (<c>Core:AgentToken</c>, the agents' <c>Http:Token</c>): Core relays their logs with it.</summary>
public sealed record AgentAccess(string? Token);

/// <summary>
/// Logs: Core relays the agents' log streams rather than handing their token out. A token given to a client could not be
/// taken back (every agent shares it) and would read every app's output; relayed, each call is checked against the
/// caller's own scope, and revoking the caller's token ends its access.
/// </summary>
public sealed partial class CoreService
{
    public override async Task Logs(V1.LogsRequest request, IServerStreamWriter<V1.LogEvent> responseStream, ServerCallContext context)
    {
        if (!Names.IsLabel(request.App) || (request.Entrypoint.Length > 0 && !Names.IsLabel(request.Entrypoint)))
            throw Refuse(StatusCode.InvalidArgument, $"app \"{request.App}\" and entrypoint \"{request.Entrypoint}\" must be DNS labels");
        if (request.Tail is < 0 or > 100_000) throw Refuse(StatusCode.InvalidArgument, $"tail {request.Tail} must be 0-100000");
        var agentToken = agents.Token;
        if (string.IsNullOrEmpty(agentToken))
            throw Refuse(StatusCode.FailedPrecondition, "eru-core has no Core:AgentToken (the agents' Http:Token): it cannot ask them");
        var ct = context.CancellationToken;
        await CaughtUpAsync(ct); // workloads deployed a moment ago are where it looks for agents
        var entrypoint = request.Entrypoint.Length > 0 ? request.Entrypoint : null;
        var query = new AgentLogQuery(request.App, entrypoint, request.Tail, request.Follow);
        using var writing = new SemaphoreSlim(1); // notes come from several agents' readers; gRPC writes must not overlap
        async Task Write(V1.LogEvent e)
        {
            await writing.WaitAsync(ct);
            try
            {
                await responseStream.WriteAsync(e, ct);
            }
            finally
            {
                writing.Release();
            }
        }
        AgentLogOutcome outcome;
        try
        {
            outcome = await AgentLogs.RunAsync(query, agentToken, watcher, (line, _) => Write(new V1.LogEvent { Record = line }),
                note => Write(new V1.LogEvent { Note = note }), ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        if (outcome == AgentLogOutcome.NoAgent)
            throw Refuse(StatusCode.FailedPrecondition, $"no agent to ask about {query.App}{(entrypoint is null ? "" : "." + entrypoint)}");
        if (outcome == AgentLogOutcome.NoAgentAnswered) throw Refuse(StatusCode.FailedPrecondition, "no agent answered");
    }
}
