using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Dev;

public static class Ports
{
    /// <summary>A loopback TCP port that was free a moment ago (the caller retries if it is taken meanwhile).</summary>
    public static int FreeTcp()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
