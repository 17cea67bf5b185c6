using EdgeEru.Dns;

// eru-dns: authoritative DNS for the registry's services. Config: appsettings.json, ERU_* env vars, --Section:Key flags.
await DnsHost.Create(args).RunAsync();
