using System.Text;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using Etcdserverpb;
using Google.Protobuf;

namespace EdgeEru.Registry.Store;

/// <summary>A registry value with the etcd metadata needed for optimistic concurrency.</summary>
public sealed record Versioned<T>(T Value, long ModRevision, long Lease);

/// <summary>
/// Typed reads and writes of registry values. Writers (Core, agents) use this; followers use
/// <see cref="Watch.RegistryWatcher"/> and never read etcd per request.
/// </summary>
public sealed class RegistryStore
{
    /// <summary>
    /// Keys per page of a list read: about 1 MB per response. etcd 3.4 counts the whole range on every limited read, so
    /// very small pages make a large list quadratic; large ones cost every follower for good, as gRPC receives each
    /// response into a buffer of the shared array pool, which keeps it (10,000 keys: 92 MB of 8 and 16 MB buffers
    /// held by eru-dns at 100k workloads; 2,000 keys: 9 MB).
    /// </summary>
    public const int PageSize = 2_000;

    private readonly EtcdConnection _etcd;

    public RegistryStore(EtcdConnection etcd)
    {
        _etcd = etcd;
        Keys = new RegistryKeys(etcd.Options.Prefix);
    }

    public RegistryKeys Keys { get; }
    internal EtcdConnection Etcd => _etcd;

    /// <summary>
    /// This registry among all others: etcd's cluster id and the prefix ("3f1a...c2/eru"). Core labels what it
    /// creates with it, so that an engine shared with another cluster is never cleaned up by this one.
    /// </summary>
    public async Task<string> IdentityAsync(CancellationToken ct = default)
    {
        var resp = await _etcd.KV.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(Keys.Root), CountOnly = true },
            deadline: _etcd.Deadline, cancellationToken: ct);
        return $"{resp.Header.ClusterId:x16}{Keys.Prefix}";
    }

    public async Task<Versioned<T>?> GetAsync<T>(RegistryKind<T> kind, string name, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        var key = Keys.Key(kind, name);
        var resp = await _etcd.KV.RangeAsync(
            new RangeRequest { Key = ByteString.CopyFromUtf8(key) }, deadline: _etcd.Deadline, cancellationToken: ct);
        if (resp.Kvs.Count == 0) return null;
        var kv = resp.Kvs[0];
        return new Versioned<T>(kind.Decode(kv.Value.Span, name), kv.ModRevision, kv.Lease);
    }

    /// <summary>
    /// Every value of a kind, read page by page at one revision. Invalid values are passed to
    /// <paramref name="onInvalid"/> (or skipped): one bad key never hides the others.
    /// </summary>
    public async Task<(IReadOnlyList<Versioned<T>> Items, long Revision)> ListAsync<T>(
        RegistryKind<T> kind, Action<RegistryValueException>? onInvalid = null, long revision = 0, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        var items = new List<Versioned<T>>();
        var prefix = Keys.KindPrefix(kind);
        var rev = await RangePagesAsync(prefix, revision, kvs =>
        {
            foreach (var kv in kvs)
            {
                var name = kv.Key.ToStringUtf8()[prefix.Length..];
                try
                {
                    items.Add(new Versioned<T>(kind.Decode(kv.Value.Span, name), kv.ModRevision, kv.Lease));
                }
                catch (RegistryValueException ex)
                {
                    onInvalid?.Invoke(ex);
                }
            }
        }, ct);
        return (items, rev);
    }

    /// <summary>
    /// The newest revision at which a key under the prefix was written (0: none). etcd's own revision also counts writes
    /// outside the prefix (another installation on the same etcd), which a watcher of the prefix never sees; a reader
    /// waiting for "what I wrote" can wait for this one instead. A key deleted since leaves no trace here. It reads the
    /// whole prefix's index, so it is for the rare case, not every call.
    /// </summary>
    public async Task<long> LatestWriteAsync(CancellationToken ct = default)
    {
        var start = ByteString.CopyFromUtf8(Keys.Root);
        var resp = await _etcd.KV.RangeAsync(new RangeRequest
        {
            Key = start, RangeEnd = ByteString.CopyFrom(RegistryKeys.RangeEnd(start.Span)), Limit = 1, KeysOnly = true,
            SortOrder = RangeRequest.Types.SortOrder.Descend, SortTarget = RangeRequest.Types.SortTarget.Mod,
        }, deadline: _etcd.Deadline, cancellationToken: ct);
        return resp.Kvs.Count == 0 ? 0 : resp.Kvs[0].ModRevision;
    }

    /// <summary>Reads every key under <paramref name="prefix"/> at one revision (the first page's, unless given), in key order.</summary>
    internal async Task<long> RangePagesAsync(
        string prefix, long revision, Action<IReadOnlyList<Mvccpb.KeyValue>> onPage, CancellationToken ct)
    {
        var start = Encoding.UTF8.GetBytes(prefix);
        var end = RegistryKeys.RangeEnd(start);
        // The kinds that grow with the cluster are ranges of their own: a page then counts what is left of its kind only.
        byte[][] kinds = prefix == Keys.Root
            ? [Encoding.UTF8.GetBytes(Keys.Root + Kinds.WorkloadStatus.Segment + "/"),
                Encoding.UTF8.GetBytes(Keys.Root + Kinds.Workloads.Segment + "/")]
            : [];
        var from = start;
        foreach (var kind in kinds)
        {
            revision = await RangeAsync(from, kind, revision, onPage, ct);
            from = RegistryKeys.RangeEnd(kind);
            revision = await RangeAsync(kind, from, revision, onPage, ct);
        }
        return await RangeAsync(from, end, revision, onPage, ct);
    }

    /// <summary>
    /// Pages through [<paramref name="start"/>, <paramref name="end"/>). etcd 3.4 walks every key of the range on each
    /// limited read (to count them), so paging through one large range costs O(n²/page): a range found to hold many
    /// keys is read in tiles by the first character after its start (ids are hex), each paged on its own.
    /// </summary>
    private async Task<long> RangeAsync(
        byte[] start, byte[] end, long revision, Action<IReadOnlyList<Mvccpb.KeyValue>> onPage, CancellationToken ct,
        bool tiled = false)
    {
        var next = start;
        while (next.AsSpan().SequenceCompareTo(end) < 0)
        {
            var resp = await _etcd.KV.RangeAsync(new RangeRequest
            {
                Key = ByteString.CopyFrom(next),
                RangeEnd = ByteString.CopyFrom(end),
                Limit = PageSize,
                Revision = revision,
            }, deadline: _etcd.Deadline, cancellationToken: ct);
            if (revision == 0) revision = resp.Header.Revision;
            if (resp.Kvs.Count > 0) onPage(resp.Kvs);
            if (!resp.More || resp.Kvs.Count == 0) return revision;
            next = [.. resp.Kvs[^1].Key.Span, 0]; // just after the last key
            if (tiled || resp.Count <= 4 * PageSize) continue;
            const string cuts = "123456789abcdef";
            for (var i = 0; i <= cuts.Length; i++)
            {
                byte[] lo = i == 0 ? start : [.. start, (byte)cuts[i - 1]];
                byte[] hi = i == cuts.Length ? end : [.. start, (byte)cuts[i]];
                if (hi.AsSpan().SequenceCompareTo(end) > 0) hi = end;
                if (next.AsSpan().SequenceCompareTo(lo) > 0) lo = next;
                if (lo.AsSpan().SequenceCompareTo(hi) < 0) revision = await RangeAsync(lo, hi, revision, onPage, ct, tiled: true);
            }
            return revision;
        }
        return revision;
    }

    /// <summary>The key every write of private keys alone touches as well (<c>{prefix}/sync</c>; followers skip it).</summary>
    internal RequestOp SyncMarker() => new()
    {
        RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(Keys.Root + "sync"), Value = ByteString.CopyFromUtf8("{\"v\":1}") },
    };

    /// <summary>Writes a value unconditionally (last writer wins): for values only one writer owns.</summary>
    public async Task<long> PutAsync<T>(RegistryKind<T> kind, T value, long lease = 0, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        if (kind.IsPrivate)
        {
            var tx = Begin();
            tx.Put(kind, value, lease);
            await tx.CommitAsync(ct);
            return tx.CommitRevision;
        }
        var resp = await _etcd.KV.PutAsync(new PutRequest
        {
            Key = ByteString.CopyFromUtf8(Keys.Key(kind, value.KeyName)),
            Value = ByteString.CopyFrom(kind.Encode(value)),
            Lease = lease,
        }, deadline: _etcd.Deadline, cancellationToken: ct);
        return resp.Header.Revision;
    }

    /// <summary>Creates a value only if its key does not exist; false if it does.</summary>
    public async Task<bool> CreateAsync<T>(RegistryKind<T> kind, T value, long lease = 0, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        var tx = Begin();
        tx.RequireAbsent(kind, value.KeyName);
        tx.Put(kind, value, lease);
        return await tx.CommitAsync(ct);
    }

    /// <summary>Deletes a key; false if there was none.</summary>
    public async Task<bool> DeleteAsync(RegistryKind kind, string name, CancellationToken ct = default)
    {
        if (kind.IsPrivate)
        {
            var txn = new TxnRequest();
            txn.Success.Add(new RequestOp
            {
                RequestDeleteRange = new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(Keys.Key(kind, name)) },
            });
            txn.Success.Add(SyncMarker());
            var done = await _etcd.KV.TxnAsync(txn, deadline: _etcd.Deadline, cancellationToken: ct);
            return done.Responses[0].ResponseDeleteRange.Deleted > 0;
        }
        var resp = await _etcd.KV.DeleteRangeAsync(new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(Keys.Key(kind, name)) },
            deadline: _etcd.Deadline, cancellationToken: ct);
        return resp.Deleted > 0;
    }

    /// <summary>
    /// Read-modify-write of one value under a revision guard, retried on conflict. <paramref name="mutate"/>
    /// gets the current value (null if absent) and returns the new one (null deletes); it may run more than once.
    /// </summary>
    public Task<T?> UpdateAsync<T>(RegistryKind<T> kind, string name, Func<T?, T?> mutate, long lease = 0, CancellationToken ct = default)
        where T : class, IRegistryRecord =>
        TransactAsync(async (tx, token) =>
        {
            var current = await tx.GetAsync(kind, name, token);
            var next = mutate(current?.Value);
            if (next is null) tx.Delete(kind, name);
            else tx.Put(kind, next, lease);
            return next;
        }, ct: ct);

    /// <summary>Starts a multi-key transaction: reads record revision guards, writes commit atomically.</summary>
    public RegistryTransaction Begin() => new(this);

    /// <summary>
    /// Runs <paramref name="body"/> in a transaction and commits it; on a conflict (a read key changed)
    /// runs it again with fresh reads, up to <paramref name="maxAttempts"/> times.
    /// </summary>
    public async Task<TResult> TransactAsync<TResult>(Func<RegistryTransaction, CancellationToken, Task<TResult>> body,
        int maxAttempts = 32, CancellationToken ct = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            var tx = Begin();
            var result = await body(tx, ct);
            if (await tx.CommitAsync(ct)) return result;
            if (attempt >= maxAttempts) throw new RegistryConflictException(attempt);
            // Back off a little, with jitter, so that contending writers spread out.
            await Task.Delay(Random.Shared.Next(0, Math.Min(50, 2 << attempt)), ct);
        }
    }

    /// <summary>Grants a lease; with <paramref name="keepAlive"/> it is renewed every TTL/3 until disposed.</summary>
    public Task<RegistryLease> GrantLeaseAsync(TimeSpan ttl, bool keepAlive = true, CancellationToken ct = default) =>
        RegistryLease.GrantAsync(_etcd, ttl, keepAlive, ct);
}

public sealed class RegistryConflictException(int attempts)
    : Exception($"registry transaction still conflicted after {attempts} attempts");
