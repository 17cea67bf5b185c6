using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeEru.Cli;

/// <summary>
/// A view of the registry of this process's own (LogsCommand.RunAsync, without eru-core): a watcher on etcd, ready with its
/// first snapshot.
/// Opening it checks the URL and prefix and waits for etcd, saying what is wrong as the command.
/// </summary>
internal sealed class RegistryView : IAsyncDisposable
{
    private readonly EtcdConnection _conn;

    private RegistryView(EtcdConnection conn, RegistryWatcher watcher)
    {
        _conn = conn;
        Watcher = watcher;
    }

    public RegistryWatcher Watcher { get; }

    /// <summary>The view, or the exit code with the problem written to <paramref name="stderr"/> (2 bad input, 1 etcd away).</summary>
    public static async Task<(RegistryView? View, int Code)> OpenAsync(
        string what, string endpoints, string prefix, TextWriter stderr, CancellationToken ct)
    {
        RegistryOptions options;
        try
        {
            options = CliText.Etcd(endpoints, prefix);
            options.ParseEndpoints();
            _ = new RegistryKeys(options.Prefix);
        }
        catch (ArgumentException ex)
        {
            // The library names its configuration keys; here they came from flags.
            await stderr.WriteLineAsync($"eru {what}: {ex.Message
                .Replace($" (Parameter '{ex.ParamName}')", "", StringComparison.Ordinal)
                .Replace("Registry:Endpoints", "--etcd", StringComparison.Ordinal)
                .Replace("Registry:Prefix", "--prefix", StringComparison.Ordinal)}");
            return (null, 2);
        }
        var conn = new EtcdConnection(options);
        var watcher = new RegistryWatcher(conn, NullLogger<RegistryWatcher>.Instance);
        var view = new RegistryView(conn, watcher);
        watcher.Start();
        try
        {
            await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(10), ct);
            return (view, 0);
        }
        catch (TimeoutException)
        {
            await view.DisposeAsync();
            await stderr.WriteLineAsync($"eru {what}: no answer from etcd at {options.Endpoints}");
            return (null, 1);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Watcher.DisposeAsync();
        _conn.Dispose();
    }
}
