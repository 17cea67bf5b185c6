using System.Net.Sockets;
using System.Text;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>
/// HTTP/1.1 to the LB over a plain socket, for tests that need the bytes exactly as written (pipelines,
/// half-closes, odd requests) and the answers exactly as they came.
/// </summary>
internal static class RawHttp
{
    /// <summary>One whole answer: its status, its head (without the blank line) and its body (de-chunked).</summary>
    public sealed record Answer(int Status, string Head, byte[] Body);

    /// <summary>
    /// A loopback connection to <paramref name="port"/> that has sent <paramref name="bytes"/>
    /// (and then FIN, with <paramref name="halfClose"/>).
    /// </summary>
    public static async Task<Socket> OpenAsync(int port, string? bytes = null, bool halfClose = false, int? receiveBuffer = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        if (receiveBuffer is { } size) socket.ReceiveBufferSize = size;
        await socket.ConnectAsync("127.0.0.1", port);
        if (bytes is not null) await socket.SendAsync(Encoding.ASCII.GetBytes(bytes));
        if (halfClose) socket.Shutdown(SocketShutdown.Send);
        return socket;
    }

    /// <summary>
    /// What the LB sends until <paramref name="until"/> holds (it must not close first), or until it closes (null);
    /// at most <paramref name="limit"/> (15 s).
    /// </summary>
    public static async Task<string> ReadAsync(Socket socket, Func<string, bool>? until, TimeSpan? limit = null)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(limit ?? TimeSpan.FromSeconds(15));
        while (until?.Invoke(text.ToString()) != true)
        {
            var n = await socket.ReceiveAsync(buffer, cts.Token);
            if (n == 0)
            {
                Assert.Null(until); // closed before the awaited answer
                break;
            }
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        return text.ToString();
    }

    /// <summary>
    /// Sends <paramref name="request"/> on a new connection and reads until <paramref name="responses"/> whole
    /// answers have come (HEAD requests' answers carry no body), or, with <paramref name="untilClose"/>, until the LB closes.
    /// </summary>
    public static async Task<string> ExchangeAsync(int port, string request, int responses, bool untilClose = false)
    {
        using var socket = await OpenAsync(port, request);
        var isHead = request.StartsWith("HEAD", StringComparison.Ordinal);
        return Encoding.ASCII.GetString(await ReadBytesAsync(socket, responses, isHead, untilClose, TimeSpan.Zero));
    }

    /// <summary>
    /// Sends <paramref name="requests"/> and reads until <paramref name="count"/> whole answers have come (fewer
    /// if the LB closes first); with <paramref name="readDelay"/>, the first 100 reads are that far apart (a
    /// slow reader: the LB's sends meet a full socket buffer).
    /// </summary>
    public static async Task<List<Answer>> ExchangeAsync(Socket socket, string requests, int count, TimeSpan readDelay)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(requests));
        return Answers(await ReadBytesAsync(socket, count, head: false, untilClose: false, readDelay), head: false);
    }

    private static async Task<byte[]> ReadBytesAsync(Socket socket, int count, bool head, bool untilClose, TimeSpan readDelay)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var data = new MemoryStream();
        var buffer = new byte[8192];
        var reads = 0;
        while (untilClose || Answers(data.GetBuffer().AsSpan(0, (int)data.Length), head).Count < count)
        {
            var n = await socket.ReceiveAsync(buffer, cts.Token);
            if (n == 0) break;
            data.Write(buffer, 0, n);
            if (readDelay > TimeSpan.Zero && ++reads < 100) await Task.Delay(readDelay, cts.Token);
        }
        return data.ToArray();
    }

    /// <summary>
    /// The whole answers at the start of <paramref name="bytes"/>: framed by Content-Length, chunked, or bodiless (HEAD, 1xx, 204, 304).
    /// </summary>
    public static List<Answer> Answers(ReadOnlySpan<byte> bytes, bool head)
    {
        var answers = new List<Answer>();
        var at = 0;
        while (true)
        {
            var end = bytes[at..].IndexOf("\r\n\r\n"u8);
            if (end < 0) return answers;
            var headText = Encoding.ASCII.GetString(bytes.Slice(at, end));
            var status = int.Parse(headText.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture);
            var fields = headText.Split("\r\n").Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToList();
            string? Field(string name) =>
                fields.FirstOrDefault(p => p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))?[1].Trim();
            var bodyAt = at + end + 4;
            byte[] body;
            if (head || status is < 200 or 204 or 304) body = [];
            else if (Field("Content-Length") is { } length)
            {
                var n = int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
                if (bytes.Length < bodyAt + n) return answers;
                body = bytes.Slice(bodyAt, n).ToArray();
                bodyAt += n;
            }
            else if (Dechunk(bytes, ref bodyAt) is { } chunks) body = chunks;
            else return answers;
            answers.Add(new Answer(status, headText, body));
            at = bodyAt;
        }
    }

    /// <summary>A chunked body from <paramref name="at"/> (moved past it), or null while it is not all there.</summary>
    private static byte[]? Dechunk(ReadOnlySpan<byte> bytes, ref int at)
    {
        var body = new List<byte>();
        var i = at;
        while (true)
        {
            var line = bytes[i..].IndexOf("\r\n"u8);
            if (line < 0) return null;
            var size = Convert.ToInt32(Encoding.ASCII.GetString(bytes.Slice(i, line)).Split(';')[0].Trim(), 16);
            i += line + 2;
            if (size == 0)
            {
                var trailerEnd = bytes[i..].IndexOf("\r\n"u8); // no trailers: the blank line
                if (trailerEnd < 0) return null;
                at = i + trailerEnd + 2;
                return [.. body];
            }
            if (bytes.Length < i + size + 2) return null;
            body.AddRange(bytes.Slice(i, size));
            i += size + 2;
        }
    }
}
