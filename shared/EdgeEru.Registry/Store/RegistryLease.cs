using EdgeEru.Registry.Etcd;
using Etcdserverpb;
using Grpc.Core;

namespace EdgeEru.Registry.Store;

/// <summary>
/// An etcd lease, renewed every TTL/3 while held. Keys written under it vanish when it is revoked
/// (dispose) or when renewals stop for a TTL (the holder crashed or lost etcd). <see cref="Lost"/>
/// fires when etcd says the lease is gone or no renewal succeeded for a whole TTL: the holder must
/// then grant a new lease and rewrite its keys.
/// </summary>
public sealed class RegistryLease : IAsyncDisposable
{
    private readonly EtcdConnection _etcd;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _lost = new();
    private readonly Task _keepAlive;

    private RegistryLease(EtcdConnection etcd, long id, TimeSpan ttl, bool keepAlive)
    {
        _etcd = etcd;
        Id = id;
        Ttl = ttl;
        LastRenewed = DateTime.UtcNow;
        _keepAlive = keepAlive ? Task.Run(KeepAliveLoopAsync) : Task.CompletedTask;
    }

    public long Id { get; }
    public TimeSpan Ttl { get; }
    public DateTime LastRenewed { get; private set; }
    public CancellationToken Lost => _lost.Token;
    public bool IsLost => _lost.IsCancellationRequested;

    internal static async Task<RegistryLease> GrantAsync(EtcdConnection etcd, TimeSpan ttl, bool keepAlive, CancellationToken ct)
    {
        var seconds = Math.Max(1, (long)Math.Ceiling(ttl.TotalSeconds));
        var resp = await etcd.Lease.LeaseGrantAsync(
            new LeaseGrantRequest { TTL = seconds }, deadline: etcd.Deadline, cancellationToken: ct);
        if (!string.IsNullOrEmpty(resp.Error)) throw new InvalidOperationException($"etcd refused the lease: {resp.Error}");
        // etcd may raise a short TTL to its minimum; renew on what it granted.
        return new RegistryLease(etcd, resp.ID, TimeSpan.FromSeconds(resp.TTL), keepAlive);
    }

    private async Task KeepAliveLoopAsync()
    {
        var interval = Ttl / 3;
        while (!_stop.IsCancellationRequested && !_lost.IsCancellationRequested)
        {
            try
            {
                using var call = _etcd.Lease.LeaseKeepAlive(cancellationToken: _stop.Token);
                while (!_stop.IsCancellationRequested)
                {
                    await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = Id }, _stop.Token);
                    if (!await call.ResponseStream.MoveNext(_stop.Token)) break;
                    if (call.ResponseStream.Current.TTL <= 0)
                    {
                        _lost.Cancel(); // etcd no longer knows this lease
                        return;
                    }
                    LastRenewed = DateTime.UtcNow;
                    await Task.Delay(interval, _stop.Token);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RpcException or IOException or HttpRequestException)
            {
                // etcd away (gRPC does not always wrap a broken HTTP/2 stream in an RpcException).
                _etcd.Failover();
            }
            if (DateTime.UtcNow - LastRenewed >= Ttl)
            {
                _lost.Cancel();
                return;
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, interval.TotalMilliseconds)), _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Stops renewing and revokes the lease, deleting its keys at once (best effort).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync();
        await _keepAlive;
        try
        {
            await _etcd.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = Id }, deadline: _etcd.Deadline);
        }
        catch (Exception ex) when (ex is RpcException or ObjectDisposedException)
        {
            // etcd is away (or the connection already closed): the lease expires on its own after its TTL.
        }
        _stop.Dispose();
        _lost.Dispose();
    }
}
