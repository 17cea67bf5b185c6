using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeEru.Hosting;

/// <summary>How a service joins the registry: one call in its Generic Host set-up.</summary>
public static class RegistryServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="RegistryOptions"/> from the "Registry" section (appsettings, ERU_Registry__Endpoints
    /// style env vars, --Registry:Endpoints flags) and registers the etcd connection and the store (writers).
    /// </summary>
    public static IServiceCollection AddRegistryStore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RegistryOptions>()
            .Bind(configuration.GetSection(RegistryOptions.Section))
            .Validate(o =>
            {
                o.ParseEndpoints();
                _ = new RegistryKeys(o.Prefix);
                return true;
            })
            .ValidateOnStart();
        services.AddSingleton(sp => new EtcdConnection(sp.GetRequiredService<IOptions<RegistryOptions>>().Value));
        services.AddSingleton<RegistryStore>();
        return services;
    }

    /// <summary>Adds the store and a <see cref="RegistryWatcher"/> started with the host (followers).</summary>
    public static IServiceCollection AddRegistryWatcher(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddRegistryStore(configuration);
        services.AddSingleton(sp =>
            new RegistryWatcher(sp.GetRequiredService<EtcdConnection>(), sp.GetRequiredService<ILogger<RegistryWatcher>>()));
        services.AddHostedService<RegistryWatcherService>();
        return services;
    }

    /// <summary>
    /// Starts the watcher without waiting for etcd: a follower starts (and reports itself not ready)
    /// even when etcd is away, and serves as soon as the first snapshot arrives.
    /// </summary>
    private sealed class RegistryWatcherService(RegistryWatcher watcher) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            watcher.Start();
            return Task.CompletedTask;
        }

        public async Task StopAsync(CancellationToken cancellationToken) => await watcher.DisposeAsync();
    }
}
