using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using EdgeEru.Dns.Server;
using EdgeEru.Dns.Wire;
using Microsoft.Extensions.Options;

namespace EdgeEru.Dns.Forwarding;

/// <summary>
/// Answers names outside our zones from upstream resolvers, as unbound did in front of SkyDNS: UDP
/// with a retry over TCP when truncated, a timeout per upstream, failing upstreams skipped for a
/// while, and a small cache that honours TTLs (negative answers by their SOA, RFC 2308).
/// </summary>
internal sealed class Forwarder
{
    private readonly ForwardOptions _options;
    private readonly Upstream[] _upstreams;
    private readonly IPNetwork[] _allowed;
    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly DnsMetrics _metrics;
    private readonly ILogger<Forwarder> _log;
    private int _adds;

    public Forwarder(IOptions<DnsOptions> options, DnsMetrics metrics, ILogger<Forwarder> log)
    {
        _options = options.Value.Forward;
        _upstreams = _options.ParseUpstreams().Select(e => new Upstream(e)).ToArray();
        _allowed = _options.EffectiveAllowFrom.Select(a => IPNetwork.Parse(a)).ToArray();
        _metrics = metrics;
        _log = log;
        if (Enabled) metrics.WatchUpstreams(this);
    }

    public bool Enabled => _upstreams.Length > 0;

    public bool Allows(IPAddress client)
    {
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        foreach (var n in _allowed)
            if (n.Contains(client)) return true;
        return false;
    }

    /// <summary>
    /// The response for <paramref name="query"/> (already known to be well formed and outside our
    /// zones), written to <paramref name="response"/>; its length. SERVFAIL when no upstream answers.
    /// </summary>
    public async Task<int> ForwardAsync(byte[] query, byte[] response, int clientLimit, CancellationToken ct)
    {
        var key = CacheKey(query);
        var id = BinaryPrimitives.ReadUInt16BigEndian(query);
        if (key is not null && _cache.TryGetValue(key, out var hit) && hit.Expires > DateTime.UtcNow)
        {
            _metrics.Forwarded("cache");
            hit.Response.CopyTo(response, 0);
            ResponseRecords.Age(response.AsSpan(0, hit.Response.Length), hit.Records, (uint)(DateTime.UtcNow - hit.Stored).TotalSeconds);
            return Finish(response, hit.Response.Length, id, clientLimit, query);
        }

        var now = DateTime.UtcNow;
        foreach (var upstream in _upstreams.OrderBy(u => u.DownUntil > now ? 1 : 0))
        {
            try
            {
                var upstreamId = (ushort)RandomNumberGenerator.GetInt32(65536); // a fresh id per upstream query (spoofing)
                var sent = (byte[])query.Clone();
                BinaryPrimitives.WriteUInt16BigEndian(sent, upstreamId);
                var answer = await QueryUdpAsync(upstream.EndPoint, sent, upstreamId, ct);
                if ((answer[2] & 0x02) != 0) answer = await QueryTcpAsync(upstream.EndPoint, sent, upstreamId, ct);
                upstream.Succeeded();
                _metrics.Forwarded("upstream");
                var records = ResponseRecords.Read(answer);
                if (key is not null && records is not null && ResponseRecords.CacheTtl(answer, records) is { } ttl && ttl > 0
                    && _options.CacheEntries > 0)
                    Remember(key, answer, records, Math.Min(ttl, _options.CacheMaxTtl));
                answer.CopyTo(response, 0);
                return Finish(response, answer.Length, id, clientLimit, query);
            }
            catch (Exception ex) when (ex is SocketException or TimeoutException or OperationCanceledException or InvalidDataException
                && !ct.IsCancellationRequested)
            {
                if (upstream.Failed(_options.FailuresBeforeDown, _options.DownFor))
                    _log.LogWarning("upstream {Upstream} down after {Failures} failures ({Error}); skipped for {Seconds}s",
                        upstream.EndPoint, _options.FailuresBeforeDown, ex.Message, _options.DownFor.TotalSeconds);
                _metrics.Forwarded("failure");
            }
        }
        // Nobody answered: SERVFAIL with the question.
        var qEnd = QuestionEnd(query);
        query.AsSpan(0, qEnd).CopyTo(response);
        response[2] = (byte)(0x80 | (query[2] & 0x79));
        response[3] = 0x80 | DnsRcode.ServFail;
        BinaryPrimitives.WriteUInt16BigEndian(response.AsSpan(6), 0);
        BinaryPrimitives.WriteUInt32BigEndian(response.AsSpan(8), 0);
        return qEnd;
    }

    /// <summary>Health of each upstream, for /metrics and /healthz.</summary>
    public IEnumerable<(IPEndPoint EndPoint, bool Up)> Health() => _upstreams.Select(u => (u.EndPoint, u.DownUntil <= DateTime.UtcNow));

    private static int Finish(byte[] response, int length, ushort clientId, int clientLimit, byte[] query)
    {
        BinaryPrimitives.WriteUInt16BigEndian(response, clientId);
        response[2] &= 0xFB;  // not AA: we are not authoritative for what we forward
        response[3] |= 0x80;  // RA: we did recurse for this client
        if (length <= clientLimit) return length;
        // Too big for the client's UDP size: TC with just the question (it will retry over TCP).
        var qEnd = QuestionEnd(query);
        response[2] |= 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(response.AsSpan(6), 0);
        BinaryPrimitives.WriteUInt32BigEndian(response.AsSpan(8), 0);
        return qEnd;
    }

    private void Remember(string key, byte[] answer, List<ResponseRecords.Record> records, uint ttl)
    {
        if (_cache.Count >= _options.CacheEntries || Interlocked.Increment(ref _adds) % 1024 == 0)
        {
            var now = DateTime.UtcNow;
            foreach (var (k, e) in _cache)
                if (e.Expires <= now) _cache.TryRemove(k, out _);
            if (_cache.Count >= _options.CacheEntries) return;
        }
        var stored = DateTime.UtcNow;
        _cache[key] = new CacheEntry(answer, records, stored, stored.AddSeconds(ttl));
    }

    private async Task<byte[]> QueryUdpAsync(IPEndPoint upstream, byte[] query, ushort id, CancellationToken ct)
    {
        using var socket = new Socket(upstream.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(upstream, ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.Timeout);
        await socket.SendAsync(query, SocketFlags.None, timeout.Token);
        var buffer = new byte[DnsLimits.MaxMessage];
        while (true)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"no answer from {upstream} within {_options.Timeout.TotalSeconds}s");
            }
            // Only the answer to this query counts: right id, a response, the same question.
            if (n >= 12 && BinaryPrimitives.ReadUInt16BigEndian(buffer) == id && (buffer[2] & 0x80) != 0
                && SameQuestion(query, buffer.AsSpan(0, n)))
                return buffer[..n];
        }
    }

    private async Task<byte[]> QueryTcpAsync(IPEndPoint upstream, byte[] query, ushort id, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.Timeout);
        try
        {
            using var socket = new Socket(upstream.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(upstream, timeout.Token);
            var framed = new byte[query.Length + 2];
            BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Length);
            query.CopyTo(framed, 2);
            await socket.SendAsync(framed, SocketFlags.None, timeout.Token);
            var length = new byte[2];
            await ReceiveExactlyAsync(socket, length, timeout.Token);
            var answer = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
            await ReceiveExactlyAsync(socket, answer, timeout.Token);
            if (answer.Length < 12 || BinaryPrimitives.ReadUInt16BigEndian(answer) != id || !SameQuestion(query, answer))
                throw new InvalidDataException($"{upstream} answered another question over TCP");
            return answer;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"no TCP answer from {upstream} within {_options.Timeout.TotalSeconds}s");
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken ct)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer[read..], SocketFlags.None, ct);
            if (n == 0) throw new SocketException((int)SocketError.ConnectionReset);
            read += n;
        }
    }

    private static bool SameQuestion(ReadOnlySpan<byte> query, ReadOnlySpan<byte> answer)
    {
        var end = QuestionEnd(query);
        if (answer.Length < end || BinaryPrimitives.ReadUInt16BigEndian(answer[4..]) != 1) return false;
        for (var i = 12; i < end; i++)
        {
            byte a = query[i], b = answer[i];
            if (a != b && (a | 0x20) != (b | 0x20)) return false; // names compare case-insensitively
        }
        return true;
    }

    /// <summary>Where the (single) question of a well-formed query ends.</summary>
    private static int QuestionEnd(ReadOnlySpan<byte> query)
    {
        var pos = 12;
        DnsName.Skip(query, ref pos);
        return pos + 4;
    }

    /// <summary>Cache key: the question, lower-cased, plus whether DNSSEC records were asked for.</summary>
    private static string? CacheKey(ReadOnlySpan<byte> query)
    {
        var end = QuestionEnd(query);
        if (end > query.Length) return null;
        Span<char> key = stackalloc char[end - 12];
        for (var i = 12; i < end; i++)
        {
            var c = query[i];
            key[i - 12] = (char)(c is >= (byte)'A' and <= (byte)'Z' ? c | 0x20 : c);
        }
        return new string(key);
    }

    private sealed record CacheEntry(byte[] Response, List<ResponseRecords.Record> Records, DateTime Stored, DateTime Expires);

    private sealed class Upstream(IPEndPoint endPoint)
    {
        private int _failures;

        public IPEndPoint EndPoint { get; } = endPoint;
        public DateTime DownUntil { get; private set; }

        public void Succeeded()
        {
            _failures = 0;
            DownUntil = default;
        }

        /// <summary>Counts a failure; true when this one takes the upstream down.</summary>
        public bool Failed(int threshold, TimeSpan downFor)
        {
            if (Interlocked.Increment(ref _failures) < threshold) return false;
            var wasUp = DownUntil <= DateTime.UtcNow;
            DownUntil = DateTime.UtcNow + downFor;
            return wasUp;
        }
    }
}
