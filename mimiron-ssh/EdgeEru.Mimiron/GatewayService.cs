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
    private readonly List<SshServer> _servers = [];
    private IReadOnlyList<HostKey> _hostKeys = [];

    /// <summary>Where the (first) server listens, once started (the port is chosen by the system when configured as 0).</summary>
    public IPEndPoint? EndPoint => _servers.Count > 0 ? _servers[0].LocalEndPoint : null;

    public IReadOnlyList<HostKey> HostKeys => _hostKeys;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        _hostKeys = HostKeyStore.LoadOrCreate(o.ResolvedHostKeyDirectory);
        var port = o.Port;
        foreach (var address in o.ListenAddresses())
        {
            var server = new SshServer(new IPEndPoint(address, port), new SshServerOptions { HostKeys = _hostKeys }, handler, log);
            server.Start();
            _servers.Add(server);
            port = server.LocalEndPoint.Port; // port 0: the system's choice for the first, the same one for the others
        }
        SshServer[] listening = [.. _servers]; // a copy: the scrape may run while the list is cleared on stop
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => Connections.Set(listening.Sum(s => s.ConnectionCount)));
        log.LogInformation("ssh gateway listening on {EndPoints}; host keys in {Dir}: {Fingerprints}",
            string.Join(", ", _servers.Select(s => s.LocalEndPoint)), o.ResolvedHostKeyDirectory,
            string.Join(", ", _hostKeys.Select(k => k.PublicKey.ToString())));
        return Task.CompletedTask;
    }

    private static readonly Gauge Connections = Metrics.CreateGauge("eru_ssh_connections", "Open SSH connections");

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var server in _servers) await server.DisposeAsync();
        _servers.Clear();
        foreach (var k in _hostKeys) k.Dispose();
        _hostKeys = [];
    }
}
