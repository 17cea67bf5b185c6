using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>
/// What <c>eru dev</c> started, in order: stopped in reverse when the run ends (Ctrl-C, a failure), each with
/// a log line, its pid file removed. The last thing started is the first to go: agents before etcd, so a
/// clean stop revokes their leases.
/// </summary>
internal sealed class StartedStack(ILogger log) : IAsyncDisposable
{
    private readonly Stack<(string Name, IAsyncDisposable Item, string? PidFile)> _items = new();

    public T Push<T>(string name, T item, string? pidFile = null) where T : IAsyncDisposable
    {
        _items.Push((name, item, pidFile));
        return item;
    }

    public async ValueTask DisposeAsync()
    {
        while (_items.TryPop(out var entry))
        {
            try
            {
                await entry.Item.DisposeAsync();
                log.LogInformation("{Name} stopped", entry.Name);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or TimeoutException or Dev.CommandFailedException)
            {
                log.LogWarning("stopping {Name}: {Error}", entry.Name, ex.Message);
            }
            if (entry.PidFile is not null) File.Delete(entry.PidFile);
        }
    }
}
