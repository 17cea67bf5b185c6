using System.Net.Sockets;
using EdgeEru.Registry.Model;

namespace EdgeEru.Agent.Health;

/// <summary>One health check of a workload's spec against its address: TCP connects and/or an HTTP GET.</summary>
public static class HealthProbe
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        UseProxy = false, AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30),
    });

    /// <summary>Null when healthy, else why not (the reason written to the status).</summary>
    public static async Task<string?> CheckAsync(Workload w, string address, CancellationToken ct)
    {
        var spec = w.Healthcheck;
        if (spec is null) return null; // no checks: healthy while running
        var timeout = TimeSpan.FromMilliseconds(spec.TimeoutMs);
        foreach (var portName in spec.TcpPorts)
        {
            var port = w.Ports.FirstOrDefault(p => p.Name == portName);
            if (port is null) return $"tcp check names port {portName}, which is not published";
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(address, port.Port, cts.Token);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                return $"tcp {address}:{port.Port}: {(ex is SocketException s ? s.SocketErrorCode.ToString() : "timeout")}";
            }
        }
        if (spec.Http is { } http)
        {
            var port = w.Ports.FirstOrDefault(p => p.Name == http.Port);
            if (port is null) return $"http check names port {http.Port}, which is not published";
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                var host = address.Contains(':') ? $"[{address}]" : address; // an IPv6 literal goes in brackets in a URL
                using var resp = await Http.GetAsync(new Uri($"http://{host}:{port.Port}{http.Path}"), cts.Token);
                var code = (int)resp.StatusCode;
                var ok = http.ExpectedCode == 0 ? code is >= 200 and < 400 : code == http.ExpectedCode;
                if (!ok) return $"http GET {http.Path}: {code}";
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                return $"http GET {http.Path}: {(ex is HttpRequestException h ? h.Message : "timeout")}";
            }
        }
        return null;
    }
}
