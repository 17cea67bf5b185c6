using System.Net;

namespace EdgeEru.Lb.Transport;

/// <summary>Client endpoints as the rest of eru-lb sees them.</summary>
internal static class Peers
{
    /// <summary>
    /// An IPv4 client of a dual-stack listener (<c>[::]</c>) arrives as <c>::ffff:a.b.c.d</c>: it is made the IPv4
    /// endpoint it is, once per connection, so X-Forwarded-For, the access log and the ip filter say <c>a.b.c.d</c>
    /// whichever listener it came through.
    /// </summary>
    public static EndPoint? Plain(EndPoint? remote) =>
        remote is IPEndPoint { Address.IsIPv4MappedToIPv6: true } mapped
            ? new IPEndPoint(mapped.Address.MapToIPv4(), mapped.Port)
            : remote;
}
