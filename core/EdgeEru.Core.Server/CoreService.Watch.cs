using System.Threading.Channels;
using EdgeEru.Registry.Snapshot;
using EdgeEru.Registry.Watch;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>
/// The last snapshots the watcher published, so that a watch resumes from a revision its client saw: the changes since
/// are the difference between the snapshot at that revision and the current one. Snapshots are persistent structures,
/// so holding a few hundred shares nearly all of their memory.
/// </summary>
public sealed class SnapshotHistory : IDisposable
{
    public const int Depth = 512;
    private readonly Queue<RegistrySnapshot> _kept = new();
    private readonly IDisposable _subscription;

    public SnapshotHistory(RegistryWatcher watcher) => _subscription = watcher.Subscribe(Keep);

    private void Keep(RegistrySnapshot s)
    {
        lock (_kept)
        {
            _kept.Enqueue(s);
            if (_kept.Count > Depth) _kept.Dequeue();
        }
    }

    /// <summary>
    /// The first snapshot kept at exactly <paramref name="revision"/>, or null. Only an exact one is the state a client
    /// had (another replica may have batched the watch differently); the first of several at one revision is the one
    /// before grace-expired heartbeats, which only change liveness, so the difference re-sends those workloads.
    /// </summary>
    public RegistrySnapshot? At(long revision)
    {
        lock (_kept) return _kept.FirstOrDefault(s => s.Revision == revision);
    }

    public void Dispose() => _subscription.Dispose();
}

/// <summary>WatchWorkloads and WatchNodes: a snapshot (or the changes since a revision), then the changes as they come.</summary>
public sealed partial class CoreService
{
    public override Task WatchWorkloads(
        V1.WatchWorkloadsRequest request, IServerStreamWriter<V1.WorkloadEvent> responseStream, ServerCallContext context)
    {
        var projection = new WorkloadProjection(request.Filter ?? new V1.ListWorkloadsRequest());
        return WatchAsync(request.SinceRevision, context, projection.Of, async (e, ct) =>
        {
            var m = new V1.WorkloadEvent { Revision = e.Revision };
            if (e.Reset) m.Reset = true;
            else if (e.Synced) m.Synced = true;
            else if (e.Put is V1.Workload w) m.Put = w;
            else m.Deleted = e.Key;
            await responseStream.WriteAsync(m, ct);
        });
    }

    public override Task WatchNodes(
        V1.WatchNodesRequest request, IServerStreamWriter<V1.NodeEvent> responseStream, ServerCallContext context) =>
        WatchAsync(request.SinceRevision, context,
            s => s.Nodes.Values.Where(n => request.Pod.Length == 0 || n.Pod == request.Pod)
                .ToDictionary(n => n.Name, n => (IMessage)ApiMapping.FromNode(n, s), StringComparer.Ordinal),
            async (e, ct) =>
            {
                var m = new V1.NodeEvent { Revision = e.Revision };
                if (e.Reset) m.Reset = true;
                else if (e.Synced) m.Synced = true;
                else if (e.Put is V1.Node n) m.Put = n;
                else m.Deleted = e.Key;
                await responseStream.WriteAsync(m, ct);
            });

    /// <summary>
    /// A watch's workloads as messages. A view the snapshot kept (same object, its node as alive as before) keeps its
    /// message, so a change costs a walk over the references, not a mapping of every workload.
    /// </summary>
    private sealed class WorkloadProjection(V1.ListWorkloadsRequest f)
    {
        private Dictionary<string, (WorkloadView View, bool NodeAlive, V1.Workload Message)> _last = new(StringComparer.Ordinal);

        public Dictionary<string, IMessage> Of(RegistrySnapshot s)
        {
            var d = new Dictionary<string, IMessage>(StringComparer.Ordinal);
            var next = new Dictionary<string, (WorkloadView, bool, V1.Workload)>(StringComparer.Ordinal);
            foreach (var w in s.Workloads)
            {
                if (w.Record is not { } r || (f.App.Length > 0 && r.App != f.App)
                    || (f.Entrypoint.Length > 0 && r.Entrypoint != f.Entrypoint)
                    || (f.Node.Length > 0 && r.Node != f.Node) || (f.Pod.Length > 0 && r.Pod != f.Pod)) continue;
                var alive = s.IsNodeAlive(r.Node);
                var message = _last.TryGetValue(r.Id, out var was) && ReferenceEquals(was.View, w) && was.NodeAlive == alive
                    ? was.Message : ApiMapping.FromView(w, s);
                next[r.Id] = (w, alive, message);
                d[r.Id] = message;
            }
            _last = next;
            return d;
        }
    }

    private readonly record struct WatchEvent(long Revision, bool Reset, bool Synced, IMessage? Put, string Key);

    /// <summary>
    /// Streams <paramref name="project"/>'s view of each snapshot as differences: the client's state (the snapshot at
    /// <paramref name="since"/>, or nothing after a reset) brought to the newest snapshot, then kept there. Snapshots that
    /// come while one is being sent are skipped to the newest: the difference is of states, so nothing is lost.
    /// </summary>
    private async Task WatchAsync(long since, ServerCallContext context, Func<RegistrySnapshot, Dictionary<string, IMessage>> project,
        Func<WatchEvent, CancellationToken, Task> write)
    {
        var ct = context.CancellationToken;
        var latest = Channel.CreateBounded<RegistrySnapshot>(
            new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest });
        using var subscription = watcher.Subscribe(s => latest.Writer.TryWrite(s));
        var first = await CaughtUpAsync(ct);
        Dictionary<string, IMessage>? sent = null;
        if (since > 0)
        {
            // A client from another replica may be ahead of this one: wait a moment for its revision.
            try
            {
                await watcher.WaitForRevisionAsync(since, ct).WaitAsync(TimeSpan.FromSeconds(5), ct);
            }
            catch (TimeoutException)
            {
            }
            if (history.At(since) is { } at) sent = project(at);
        }
        var current = first;
        while (true)
        {
            var now = project(current);
            if (sent is null)
            {
                await write(new WatchEvent(current.Revision, true, false, null, ""), ct);
                sent = new Dictionary<string, IMessage>(StringComparer.Ordinal);
            }
            foreach (var (key, message) in now)
                if (!sent.TryGetValue(key, out var before) || !before.Equals(message))
                    await write(new WatchEvent(current.Revision, false, false, message, key), ct);
            foreach (var key in sent.Keys)
                if (!now.ContainsKey(key)) await write(new WatchEvent(current.Revision, false, false, null, key), ct);
            await write(new WatchEvent(current.Revision, false, true, null, ""), ct);
            sent = now;
            do
            {
                try
                {
                    current = await latest.Reader.ReadAsync(ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            while (current.Revision < first.Revision); // the subscription's first call may be older than the caught-up one
        }
    }
}
