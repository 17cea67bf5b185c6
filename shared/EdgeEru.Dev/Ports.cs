using System.Net;
using System.Net.Sockets;

namespace EdgeEru.Dev;

public static class Ports
{
    // Ports are handed out below the kernel's ephemeral range: a port the kernel gave us from that range
    // can be given again to any outgoing connection (to etcd, to a test backend) before the caller binds
    // it, which made a test fail now and then with "address already in use". Below the range only another
    // listener can take it, and every one in this process draws from here without repeats.
    private static readonly object Gate = new();
    private static readonly HashSet<int> Given = [];
    private static readonly (int Low, int High) Range = PickRange();

    /// <summary>
    /// A TCP port (also free for UDP) on every address that no one listens on and that this process has not
    /// handed out before. It lies outside the ephemeral range, so outgoing connections cannot take it before
    /// the caller binds it.
    /// </summary>
    public static int FreeTcp()
    {
        lock (Gate)
        {
            var span = Range.High - Range.Low;
            for (var tries = 0; tries < span; tries++)
            {
                var port = Range.Low + Random.Shared.Next(span);
                if (Given.Contains(port) || !Bindable(port)) continue;
                Given.Add(port);
                return port;
            }
            throw new InvalidOperationException($"no free port in {Range.Low}-{Range.High}");
        }
    }

    private static bool Bindable(int port)
    {
        try
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Any, port));
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Any, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Up to 20000 ports just below the ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range), or above
    /// it when it starts too low to leave room.
    /// </summary>
    private static (int Low, int High) PickRange()
    {
        var (low, high) = (32768, 60999);
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range")
                .Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && int.TryParse(parts[0], out var l) && int.TryParse(parts[1], out var h)) (low, high) = (l, h);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        // Kept above 10000, clear of well-known service ports (ssh, etcd's 2379, 8080 and the like).
        if (low >= 12000) return (Math.Max(10000, low - 20000), low);
        if (high <= 64535) return (high + 1, 65536);
        return (10000, 30000); // the range covers nearly everything: fall back to checking bindability alone
    }
}
