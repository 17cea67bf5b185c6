using EdgeEru.Lb;

// eru-lb: the layer-7 balancer. Config: appsettings.json, ERU_* env vars, --Section:Key flags.
await LbHost.Create(args).RunAsync();
