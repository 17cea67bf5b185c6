using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Dev;

/// <summary>
/// What a load run saw: answers, failures after every replica was tried, first tries that failed over, and answers
/// that named an address known to be dead (<see cref="EdgeLoad.StaleAddresses"/>: still answered within its TTL).
/// </summary>
public sealed record EdgeLoadResult(long DnsOk, long DnsFailed, long DnsFailedOver, long HttpOk, long HttpFailed, long HttpFailedOver,
    TimeSpan Took, long DnsStale = 0)
{
    public override string ToString() =>
        $"DNS {DnsOk} answered, {DnsFailed} failed ({DnsFailedOver} answered by the other replica" +
        (DnsStale > 0 ? $", {DnsStale} naming a dead address" : "") + "); " +
        $"HTTP {HttpOk} ok, {HttpFailed} failed ({HttpFailedOver} answered by the other replica), in {Took.TotalSeconds:0.0} s";

    /// <summary>What happened between <paramref name="before"/> and this (counters of one run taken at two moments).</summary>
    public EdgeLoadResult Since(EdgeLoadResult before) => new(DnsOk - before.DnsOk, DnsFailed - before.DnsFailed,
        DnsFailedOver - before.DnsFailedOver, HttpOk - before.HttpOk, HttpFailed - before.HttpFailed,
        HttpFailedOver - before.HttpFailedOver, Took - before.Took, DnsStale - before.DnsStale);
}

/// <summary>
/// Clients of a replicated edge, as real ones are: a resolver with two nameservers and an HTTP client with two
/// addresses for the LB's name. Each request goes to one replica (alternating); when that one does not answer
/// within <c>tryTimeout</c>, or refuses, it is asked of the next. A request fails only when no replica answered
/// it correctly; a first try that failed over is counted apart. Bounded in count and time.
/// </summary>
public sealed class EdgeLoad(IReadOnlyList<IPEndPoint> dnsServers, IReadOnlyList<IPEndPoint> lbs, string dnsName, string httpHost,
    TimeSpan tryTimeout)
{
    /// <summary>Replicas on the standard ports: DNS on 53, HTTP on 80.</summary>
    public EdgeLoad(IReadOnlyList<IPAddress> dnsServers, IReadOnlyList<IPAddress> lbs, string dnsName, string httpHost, TimeSpan tryTimeout)
        : this([.. dnsServers.Select(a => new IPEndPoint(a, 53))], [.. lbs.Select(a => new IPEndPoint(a, 80))], dnsName, httpHost,
            tryTimeout)
    {
    }

    private long _dnsOk, _dnsFailed, _dnsOver, _httpOk, _httpFailed, _httpOver, _dnsStale;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private volatile HashSet<IPAddress> _stale = [];

    /// <summary>Addresses known to be dead now (a killed container's): a DNS answer naming one is counted as stale.</summary>
    public IReadOnlyCollection<IPAddress> StaleAddresses
    {
        get => _stale;
        set => _stale = [.. value];
    }

    /// <summary>The counters so far (every run of this load together); <see cref="EdgeLoadResult.Since"/> gives a window.</summary>
    public EdgeLoadResult Counts => new(Interlocked.Read(ref _dnsOk), Interlocked.Read(ref _dnsFailed), Interlocked.Read(ref _dnsOver),
        Interlocked.Read(ref _httpOk), Interlocked.Read(ref _httpFailed), Interlocked.Read(ref _httpOver), _clock.Elapsed,
        Interlocked.Read(ref _dnsStale));

    /// <summary>Why the last few requests failed, for the log.</summary>
    public List<string> Failures { get; } = [];

    /// <summary>
    /// Runs <paramref name="clients"/> DNS and HTTP clients each until <paramref name="during"/> is done and at least
    /// <paramref name="atLeast"/>.
    /// </summary>
    public async Task<EdgeLoadResult> RunAsync(Func<Task> during, TimeSpan atLeast, int clients = 2, CancellationToken ct = default)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watch = Stopwatch.StartNew();
        var workers = new List<Task>();
        for (var c = 0; c < clients; c++)
        {
            var first = c;
            workers.Add(Task.Run(() => DnsLoopAsync(first, stop.Token), CancellationToken.None));
            workers.Add(Task.Run(() => HttpLoopAsync(first, stop.Token), CancellationToken.None));
        }
        try
        {
            await during();
            if (watch.Elapsed < atLeast) await Task.Delay(atLeast - watch.Elapsed, ct);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers);
        }
        return new EdgeLoadResult(_dnsOk, _dnsFailed, _dnsOver, _httpOk, _httpFailed, _httpOver, watch.Elapsed, _dnsStale);
    }

    private async Task DnsLoopAsync(int start, CancellationToken stop)
    {
        var query = Query(dnsName);
        var buffer = new byte[1500];
        for (var n = 0; n < 5_000_000 && !stop.IsCancellationRequested; n++)
        {
            var answered = false;
            for (var t = 0; t < dnsServers.Count && !answered && !stop.IsCancellationRequested; t++)
            {
                var server = dnsServers[(start + n + t) % dnsServers.Count];
                BinaryPrimitives.WriteUInt16BigEndian(query, (ushort)Random.Shared.Next(65536));
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                timeout.CancelAfter(tryTimeout);
                try
                {
                    await socket.SendToAsync(query, server, timeout.Token);
                    var r = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), timeout.Token);
                    // The same id, NOERROR, at least one answer: what a resolver would hand back.
                    answered = r.ReceivedBytes >= 12 && buffer[0] == query[0] && buffer[1] == query[1] && (buffer[3] & 0x0F) == 0
                        && BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(6)) > 0;
                    if (!answered)
                        Note($"dns {server}: rcode {buffer[3] & 0x0F}, {BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(6))} answers");
                    else if (_stale.Count > 0 && NamesAny(buffer.AsSpan(0, r.ReceivedBytes), _stale)) Interlocked.Increment(ref _dnsStale);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException)
                {
                    if (!stop.IsCancellationRequested)
                        Note($"dns {server}: {(ex is OperationCanceledException ? "no answer in time" : ex.Message)}");
                }
                if (!answered && !stop.IsCancellationRequested && t == 0) Interlocked.Increment(ref _dnsOver);
            }
            if (stop.IsCancellationRequested) break;
            Interlocked.Increment(ref answered ? ref _dnsOk : ref _dnsFailed);
        }
    }

    private async Task HttpLoopAsync(int start, CancellationToken stop)
    {
        // One connection pool per replica, as a client keeps per address; a connect that hangs is given up.
        var clients = lbs.Select(lb => new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = tryTimeout, PooledConnectionLifetime = TimeSpan.FromSeconds(30),
        })
        {
            BaseAddress = new Uri($"http://{lb}/"), Timeout = TimeSpan.FromSeconds(5),
        }).ToList();
        try
        {
            for (var n = 0; n < 5_000_000 && !stop.IsCancellationRequested; n++)
            {
                var ok = false;
                for (var t = 0; t < clients.Count && !ok && !stop.IsCancellationRequested; t++)
                {
                    var client = clients[(start + n + t) % clients.Count];
                    try
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
                        request.Headers.Host = httpHost;
                        using var response = await client.SendAsync(request, stop);
                        await response.Content.ReadAsStringAsync(stop);
                        ok = response.IsSuccessStatusCode;
                        if (!ok) Note($"http {client.BaseAddress}: {(int)response.StatusCode}");
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        if (!stop.IsCancellationRequested) Note($"http {client.BaseAddress}: {ex.Message}");
                    }
                    if (!ok && !stop.IsCancellationRequested && t == 0) Interlocked.Increment(ref _httpOver);
                }
                if (stop.IsCancellationRequested) break;
                Interlocked.Increment(ref ok ? ref _httpOk : ref _httpFailed);
            }
        }
        finally
        {
            foreach (var c in clients) c.Dispose();
        }
    }

    private void Note(string failure)
    {
        lock (Failures)
            if (Failures.Count < 20) Failures.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {failure}");
    }

    /// <summary>Whether an answer's A records name one of <paramref name="addresses"/> (a malformed answer names none).</summary>
    private static bool NamesAny(ReadOnlySpan<byte> msg, HashSet<IPAddress> addresses)
    {
        var at = 12;
        int Skip(ReadOnlySpan<byte> m, int i) // a name: labels up to the root, or up to a compression pointer
        {
            while (i < m.Length && m[i] != 0)
            {
                if ((m[i] & 0xC0) == 0xC0) return i + 2;
                i += m[i] + 1;
            }
            return i + 1;
        }
        for (var q = BinaryPrimitives.ReadUInt16BigEndian(msg[4..]); q > 0; q--) at = Skip(msg, at) + 4;
        for (var a = BinaryPrimitives.ReadUInt16BigEndian(msg[6..]); a > 0 && at < msg.Length; a--)
        {
            at = Skip(msg, at);
            if (at + 10 > msg.Length) return false;
            var (type, length) = (BinaryPrimitives.ReadUInt16BigEndian(msg[at..]), BinaryPrimitives.ReadUInt16BigEndian(msg[(at + 8)..]));
            at += 10;
            if (at + length > msg.Length) return false;
            if (type == 1 && length == 4 && addresses.Contains(new IPAddress(msg.Slice(at, 4)))) return true;
            at += length;
        }
        return false;
    }

    /// <summary>A recursion-desired A query for <paramref name="name"/> (the id is set per try).</summary>
    private static byte[] Query(string name)
    {
        var q = new List<byte> { 0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            q.Add((byte)label.Length);
            q.AddRange(System.Text.Encoding.ASCII.GetBytes(label));
        }
        q.AddRange([0, 0, 1, 0, 1]);
        return [.. q];
    }
}
