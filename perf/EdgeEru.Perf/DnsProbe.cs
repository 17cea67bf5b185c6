using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Perf;

/// <summary>A minimal UDP DNS client for the benchmark: one query, the response code and answer count.</summary>
internal sealed class DnsProbe : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly byte[] _rx = new byte[65535];
    private ushort _id;

    public DnsProbe(int port)
    {
        _socket.Connect(IPAddress.Loopback, port);
        _socket.ReceiveTimeout = 1000;
    }

    public (int Rcode, int Answers)? Ask(string name, ushort type) =>
        Send(name, type) is { } n ? (_rx[3] & 0xF, BinaryPrimitives.ReadUInt16BigEndian(_rx.AsSpan(6))) : null;

    /// <summary>The address of the first A record in the answer to <paramref name="name"/> (null: none, or no answer).</summary>
    public string? FirstA(string name)
    {
        if (Send(name, 1) is not { } n || BinaryPrimitives.ReadUInt16BigEndian(_rx.AsSpan(6)) == 0) return null;
        var at = _questionEnd; // the question is echoed as sent
        while (at + 12 <= n)
        {
            at += SkipName(at);
            var type = BinaryPrimitives.ReadUInt16BigEndian(_rx.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt16BigEndian(_rx.AsSpan(at + 8));
            if (type == 1 && length == 4) return new IPAddress(_rx.AsSpan(at + 10, 4)).ToString();
            at += 10 + length;
        }
        return null;
    }

    private int _questionEnd;

    /// <summary>Sends one query and waits for its response in <see cref="_rx"/>: its length, or null on a timeout.</summary>
    private int? Send(string name, ushort type)
    {
        var q = new List<byte>();
        var id = ++_id;
        q.AddRange([(byte)(id >> 8), (byte)id, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            q.Add((byte)label.Length);
            q.AddRange(System.Text.Encoding.ASCII.GetBytes(label));
        }
        q.AddRange([0, (byte)(type >> 8), (byte)type, 0, 1]);
        _questionEnd = q.Count;
        q.AddRange([0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]); // EDNS, 1232
        _socket.Send(q.ToArray());
        try
        {
            while (true)
            {
                var n = _socket.Receive(_rx);
                if (n >= 12 && BinaryPrimitives.ReadUInt16BigEndian(_rx) == id) return n;
            }
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>The length of the (possibly compressed) name at <paramref name="at"/>.</summary>
    private int SkipName(int at)
    {
        var start = at;
        while (_rx[at] != 0 && (_rx[at] & 0xC0) != 0xC0) at += _rx[at] + 1;
        return (_rx[at] == 0 ? at + 1 : at + 2) - start;
    }

    public void Dispose() => _socket.Dispose();
}
