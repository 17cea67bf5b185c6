using EdgeEru.Registry.Model;
using Etcdserverpb;
using Google.Protobuf;

namespace EdgeEru.Registry.Store;

/// <summary>
/// An optimistic multi-key transaction. Every read adds a guard (the key's mod revision, or its
/// absence); commit applies all writes in one etcd Txn only if every guard still holds, so a
/// concurrent writer is detected, never silently overwritten. Reads see one revision.
/// </summary>
public sealed class RegistryTransaction
{
    private readonly RegistryStore _store;
    private readonly List<Compare> _guards = [];
    private readonly List<RequestOp> _writes = [];
    private long _readRevision;

    internal RegistryTransaction(RegistryStore store) => _store = store;

    /// <summary>The revision reads were made at (0 before the first read).</summary>
    public long ReadRevision => _readRevision;

    /// <summary>The revision of the committed write (after a successful commit).</summary>
    public long CommitRevision { get; private set; }

    public async Task<Versioned<T>?> GetAsync<T>(RegistryKind<T> kind, string name, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        var key = ByteString.CopyFromUtf8(_store.Keys.Key(kind, name));
        var resp = await _store.Etcd.KV.RangeAsync(new RangeRequest { Key = key, Revision = _readRevision },
            deadline: _store.Etcd.Deadline, cancellationToken: ct);
        if (_readRevision == 0) _readRevision = resp.Header.Revision;
        if (resp.Kvs.Count == 0)
        {
            _guards.Add(Absent(key));
            return null;
        }
        var kv = resp.Kvs[0];
        _guards.Add(new Compare
        {
            Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = kv.ModRevision,
        });
        return new Versioned<T>(kind.Decode(kv.Value.Span, name), kv.ModRevision, kv.Lease);
    }

    /// <summary>
    /// Reads every value of a kind and guards the whole range: the commit fails if any key in it was
    /// created or changed since. (Deletions are not guarded: they only free what was counted.)
    /// </summary>
    public async Task<IReadOnlyList<Versioned<T>>> ListAsync<T>(RegistryKind<T> kind, CancellationToken ct = default)
        where T : class, IRegistryRecord
    {
        var (items, rev) = await _store.ListAsync(kind, revision: _readRevision, ct: ct);
        if (_readRevision == 0) _readRevision = rev;
        var prefix = ByteString.CopyFromUtf8(_store.Keys.KindPrefix(kind));
        _guards.Add(new Compare
        {
            Key = prefix,
            RangeEnd = ByteString.CopyFrom(RegistryKeys.RangeEnd(prefix.Span)),
            Target = Compare.Types.CompareTarget.Mod,
            Result = Compare.Types.CompareResult.Less,
            ModRevision = _readRevision + 1,
        });
        return items;
    }

    /// <summary>Guards that a key does not exist at commit.</summary>
    public void RequireAbsent(RegistryKind kind, string name) =>
        _guards.Add(Absent(ByteString.CopyFromUtf8(_store.Keys.Key(kind, name))));

    public void Put<T>(RegistryKind<T> kind, T value, long lease = 0) where T : class, IRegistryRecord
    {
        Touch(kind);
        _writes.Add(new RequestOp
        {
            RequestPut = new PutRequest
            {
                Key = ByteString.CopyFromUtf8(_store.Keys.Key(kind, value.KeyName)),
                Value = ByteString.CopyFrom(kind.Encode(value)),
                Lease = lease,
            },
        });
    }

    public void Delete(RegistryKind kind, string name)
    {
        Touch(kind);
        _writes.Add(new RequestOp
        {
            RequestDeleteRange = new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(_store.Keys.Key(kind, name)) },
        });
    }

    private bool _touchesPrivate, _touchesPrefix;

    private void Touch(RegistryKind kind)
    {
        if (kind.IsPrivate) _touchesPrivate = true;
        else _touchesPrefix = true;
    }

    /// <summary>Commits the writes if every guard holds; false on a conflict (nothing was written).</summary>
    public async Task<bool> CommitAsync(CancellationToken ct = default)
    {
        var txn = new TxnRequest();
        txn.Compare.AddRange(_guards);
        txn.Success.AddRange(_writes);
        // Only private keys written: touch {prefix}/sync too, so that a watcher of the prefix reaches this revision
        // (a reader waiting for "at least what I wrote" would wait for an event that never comes under the prefix).
        if (_touchesPrivate && !_touchesPrefix) txn.Success.Add(_store.SyncMarker());
        var resp = await _store.Etcd.KV.TxnAsync(txn, deadline: _store.Etcd.Deadline, cancellationToken: ct);
        if (resp.Succeeded) CommitRevision = resp.Header.Revision;
        return resp.Succeeded;
    }

    private static Compare Absent(ByteString key) => new()
    {
        Key = key,
        Target = Compare.Types.CompareTarget.Create,
        Result = Compare.Types.CompareResult.Equal,
        CreateRevision = 0,
    };
}
