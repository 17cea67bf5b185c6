using System.Diagnostics.Metrics;
using EdgeEru.Dev;
using EdgeEru.Hosting;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace EdgeEru.Registry.Tests;

public class HostingTests(EtcdFixture etcd) : IClassFixture<EtcdFixture>
{
    [Fact]
    public async Task A_host_binds_registry_options_from_configuration_and_runs_the_watcher_with_metrics()
    {
        var prefix = EtcdFixture.NewPrefix();
        var builder = Host.CreateApplicationBuilder(["--Registry:Endpoints", etcd.Url, "--Registry:Prefix", prefix]);
        builder.Services.AddRegistryWatcher(builder.Configuration);
        using var host = builder.Build();
        var measured = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            // Other tests run watchers at the same time: listen to this one only (its meter is tagged with its prefix).
            if (i.Meter.Name == RegistryWatcher.MeterName
                && i.Meter.Tags?.Any(t => t.Key == "prefix" && (string?)t.Value == prefix) == true)
                l.EnableMeasurementEvents(i);
        };
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => { lock (measured) measured[i.Name] = v; });
        listener.SetMeasurementEventCallback<int>((i, v, _, _) => { lock (measured) measured[i.Name] = v; });
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => { lock (measured) measured[i.Name] = v; });
        listener.Start();

        await host.StartAsync();
        var watcher = host.Services.GetRequiredService<RegistryWatcher>();
        var store = host.Services.GetRequiredService<RegistryStore>();
        await watcher.Ready.WaitAsync(TimeSpan.FromSeconds(15));
        await Eventually.True(() => watcher.InTouch, TimeSpan.FromSeconds(15), "watch established");
        Assert.Equal(prefix, host.Services.GetRequiredService<IOptions<RegistryOptions>>().Value.Prefix);
        var rev = await store.PutAsync(Kinds.Pods, Samples.Pod("hosted"));
        var s = await watcher.WaitForRevisionAsync(rev).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(s.Pods.ContainsKey("hosted"));

        listener.RecordObservableInstruments();
        lock (measured)
        {
            Assert.Equal(rev, measured["revision"]);
            Assert.Equal(1, measured["relists"]);
            Assert.True(measured.ContainsKey("apply_duration"));
        }
        await host.StopAsync();
    }

    [Fact]
    public void Bad_registry_configuration_is_refused_at_start_with_what_is_wrong()
    {
        var builder = Host.CreateApplicationBuilder(["--Registry:Endpoints", "127.0.0.1:2379"]);
        builder.Services.AddRegistryStore(builder.Configuration);
        using var host = builder.Build();
        var ex = Assert.ThrowsAny<Exception>(() => host.Services.GetRequiredService<IOptions<RegistryOptions>>().Value);
        Assert.Contains("\"127.0.0.1:2379\" is not an http:// or https:// URL", ex.ToString());
    }

    [Fact]
    public void A_missing_program_names_the_Debian_package_to_install()
    {
        var ex = Assert.Throws<ToolMissingException>(() => Tools.Find("eru-no-such-program", "etcd-server"));
        Assert.Contains("install the Debian package etcd-server", ex.Message);
    }
}
