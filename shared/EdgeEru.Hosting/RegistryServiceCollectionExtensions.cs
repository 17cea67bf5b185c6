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
    /// Adds <see cref="RemoteDatacenters"/>: read-only watchers of the registries listed under Registry:Datacenters (an array:
    /// Name, Endpoints, Prefix, TLS files of the follower's own etcd user there), in failover order; none when the list is
    /// empty. Each keeps the local Registry:LivenessGrace unless it sets its own.
    /// </summary>
    public static IServiceCollection AddRemoteDatacenters(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(RegistryOptions.Section);
        var local = new RegistryOptions();
        section.Bind(local);
        var remotes = section.GetSection("Datacenters").GetChildren().Select(child =>
        {
            var options = new RegistryOptions { LivenessGrace = local.LivenessGrace };
            child.Bind(options);
            if (child["Endpoints"] is null) options.Endpoints = ""; // never the local etcd's by default
            return new RemoteDatacenter(child["Name"] ?? "", options);
        }).ToList();
        var problems = RemoteDatacenters.Problems(remotes).ToList();
        if (problems.Count > 0) throw new OptionsValidationException("Registry:Datacenters", typeof(RegistryOptions), problems);
        services.AddSingleton(sp => new RemoteDatacenters(remotes, sp.GetRequiredService<ILoggerFactory>()));
        services.AddHostedService<RemoteDatacentersService>();
        return services;
    }

    private sealed class RemoteDatacentersService(RemoteDatacenters remotes) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            remotes.Start();
            return Task.CompletedTask;
        }

        public async Task StopAsync(CancellationToken cancellationToken) => await remotes.DisposeAsync();
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
