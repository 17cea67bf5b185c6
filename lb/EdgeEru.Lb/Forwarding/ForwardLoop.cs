using System.Runtime.CompilerServices;
using EdgeEru.Lb.Backends;

namespace EdgeEru.Lb.Forwarding;

/// <summary>
/// The client's side of a forwarded request, as the forward loop sees it: Kestrel's request (Proxy) or a
/// connection of the fast path (FastPath). A struct for each, so the loop is compiled once per front and calls
/// it without virtual calls.
/// </summary>
internal interface IForwardingClient
{
    /// <summary>Sends the request to <paramref name="destination"/> and relays its answer to the client.</summary>
    ValueTask<ForwardOutcome> SendAsync(Destination destination);

    /// <summary>Nothing of an answer has reached the client, so another destination may still be tried.</summary>
    bool CanRetry { get; }

    /// <summary>Undoes what a failed try left on the answer, before the next one.</summary>
    void Reset();

    /// <summary>
    /// Answers a failure the LB's way (503, 502, 504), or cuts the client's connection, as <paramref name="outcome"/> needs.
    /// </summary>
    ValueTask FailAsync(ForwardOutcome outcome);

    /// <summary>The request is over: its metrics and access-log line, with the destination tried last.</summary>
    void Record(Destination? destination);
}

/// <summary>
/// The forward loop both fronts use (Kestrel's and the fast path's): choose a destination, send, and on a failure
/// that leaves the client nothing, eject that destination and try another.
/// </summary>
internal static class ForwardLoop
{
    /// <summary>
    /// Forwards to a destination of the backend: <paramref name="first"/> (the one an affinity cookie names) or the
    /// policy's pick. One that is unreachable or too slow is ejected for a while (passive health) and, while the
    /// client has seen nothing, another is tried, <paramref name="attempts"/> in all. Then a failure is answered and
    /// the request recorded. One async method: a request keeps one state machine of it while the workload answers.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<ForwardOutcome> RunAsync<TClient>(
        TClient client, BackendPools pools, BackendSettings backend, int attempts, Destination? first, ILogger log)
        where TClient : struct, IForwardingClient
    {
        var pool = pools.Choose();
        Destination? destination = null;
        var outcome = ForwardOutcome.NoDestination;
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            // 1. A destination: the sticky one first, else the policy's pick among the live ones.
            destination = attempt == 1 && first is not null ? first : pool.Pick(backend.Policy);
            if (destination is null) break;

            // 2. The request to it and its answer, counted in flight there.
            destination.Begin();
            try
            {
                outcome = await client.SendAsync(destination);
            }
            finally
            {
                destination.End();
            }

            // 3. Unreachable or too slow: out of picking for a while, and another one while the client has seen nothing.
            if (outcome is not (ForwardOutcome.Unreachable or ForwardOutcome.TimedOut)) break;
            destination.Failed(outcome == ForwardOutcome.TimedOut ? "RequestTimedOut" : "Request", log);
            if (attempt == attempts || !client.CanRetry) break;
            client.Reset();
            // Chosen again: with that one ejected, a datacenter (or fallback) that could not serve may be the next in order.
            pool = pools.Choose();
        }

        // 4. A failure gets the LB's answer; then the request is recorded.
        if (outcome != ForwardOutcome.Done) await client.FailAsync(outcome);
        client.Record(destination);
        return outcome;
    }
}
