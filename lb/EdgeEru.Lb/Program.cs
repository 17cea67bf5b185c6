using EdgeEru.Lb;

// Socket completions run on the epoll threads instead of hopping to the thread pool: on a small machine the
// hop (a wake-up and a context switch per I/O) cost more than the work (measured with perf/run.sh lb).
// The runtime reads this once, when the first socket is made, so it is set before anything else; set it
// to 0 in the environment to keep the hop.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

// eru-lb: the layer-7 balancer. Config: appsettings.json, ERU_* env vars, --Section:Key flags.
await LbHost.Create(args).RunAsync();
