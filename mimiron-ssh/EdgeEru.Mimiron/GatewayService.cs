using System.Net;
using EdgeEru.Mimiron.Sessions;
using EdgeEru.Ssh.Keys;
using EdgeEru.Ssh.Server;
using Microsoft.Extensions.Options;
using Prometheus;

namespace EdgeEru.Mimiron;

/// <summary>Runs the SSH server with the gateway's handler for the host's lifetime; host keys are made on first start.</summary>
public sealed class GatewayService(IOptions<GatewayOptions> options, GatewayHandler handler, ILogger<GatewayService> log)
    : IHostedService, IAsyncDisposable
{
    private SshServer? _server;
    private IReadOnlyList<HostKey> _hostKeys = [];

    /// <summary>Where the server listens, once started (the port is chosen by the system when configured as 0).</summary>
    public IPEndPoint? EndPoint => _server?.LocalEndPoint;

    public IReadOnlyList<HostKey> HostKeys => _hostKeys;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        _hostKeys = HostKeyStore.LoadOrCreate(o.ResolvedHostKeyDirectory);
        _server = new SshServer(new IPEndPoint(IPAddress.Parse(o.Listen), o.Port), new SshServerOptions { HostKeys = _hostKeys },
            handler, log);
        _server.Start();
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => Connections.Set(_server?.ConnectionCount ?? 0));
        log.LogInformation("ssh gateway listening on {EndPoint}; host keys in {Dir}: {Fingerprints}", _server.LocalEndPoint,
            o.ResolvedHostKeyDirectory, string.Join(", ", _hostKeys.Select(k => k.PublicKey.ToString())));
        return Task.CompletedTask;
    }

    private static readonly Gauge Connections = Metrics.CreateGauge("eru_ssh_connections", "Open SSH connections");

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _server = null;
        foreach (var k in _hostKeys) k.Dispose();
        _hostKeys = [];
    }
}
