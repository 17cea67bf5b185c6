using System.Net.Sockets;
using System.Text.Json;

namespace EdgeEru.Dev;

/// <summary>
/// Plain HTTP to a Docker engine for the few calls the rig makes itself with a body of its own (an image import,
/// a build context): <c>unix://PATH</c> or plain <c>tcp://HOST:PORT</c>.
/// </summary>
public static class EngineHttp
{
    public static HttpClient Create(string endpoint, TimeSpan? timeout = null)
    {
        var wait = timeout ?? TimeSpan.FromMinutes(5);
        if (endpoint.StartsWith("tcp://", StringComparison.Ordinal))
            return new HttpClient { BaseAddress = new Uri("http://" + endpoint["tcp://".Length..]), Timeout = wait };
        if (!endpoint.StartsWith("unix://", StringComparison.Ordinal))
            throw new NotSupportedException($"Docker endpoint {endpoint}: unix:// or tcp:// only");
        var socketPath = endpoint["unix://".Length..];
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri("http://docker"), Timeout = wait };
    }

    /// <summary>
    /// Reads an answer of JSON messages (/images/create, /build): the engine says 200 before the work is done,
    /// so a failure part-way comes as a message with "error". Returns the messages.
    /// </summary>
    public static async Task<IReadOnlyList<JsonElement>> MessagesAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{what}: {(int)response.StatusCode} {text.Trim()}");
        var messages = new List<JsonElement>();
        // Messages follow each other, one JSON value after the other (mostly one a line, not always).
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(text), new JsonReaderOptions { AllowMultipleValues = true });
        while (reader.Read())
        {
            var message = JsonElement.ParseValue(ref reader);
            if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("error", out var error))
                throw new InvalidOperationException($"{what}: {error.GetString()}");
            messages.Add(message);
        }
        return messages;
    }
}
