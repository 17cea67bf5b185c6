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

    public (int Rcode, int Answers)? Ask(string name, ushort type)
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
        q.AddRange([0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]); // EDNS, 1232
        _socket.Send(q.ToArray());
        try
        {
            while (true)
            {
                var n = _socket.Receive(_rx);
                if (n < 12 || BinaryPrimitives.ReadUInt16BigEndian(_rx) != id) continue;
                return (_rx[3] & 0xF, BinaryPrimitives.ReadUInt16BigEndian(_rx.AsSpan(6)));
            }
        }
        catch (SocketException)
        {
            return null;
        }
    }

    public void Dispose() => _socket.Dispose();
}
