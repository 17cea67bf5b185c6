using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Lb.Transport;

/// <summary>Gives a connection, with the bytes read from it and not answered, to Kestrel.</summary>
internal delegate void HandOver(EpollSocket socket, EndPoint? local, EndPoint? remote, ReadOnlyMemory<byte> already);

/// <summary>
/// Takes the connections accepted on some ports before Kestrel sees them (the HTTP/1.1 fast path); a connection
/// it leaves to Kestrel comes back through <see cref="HandOver"/>, and Kestrel reads it from there on.
/// </summary>
internal interface IAcceptHook
{
    /// <summary>Whether connections accepted on <paramref name="port"/> go to this hook (asked once per listener).</summary>
    bool Takes(int port);

    /// <summary>A connection accepted on one of its ports; it owns the socket from here.</summary>
    void Accept(Socket accepted, HandOver handOver);
}
