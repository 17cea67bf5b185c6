using EdgeEru.Mimiron;

// eru-ssh: the SSH gateway into containers. Config: appsettings.json, ERU_* env vars, --Section:Key flags.
await MimironHost.Create(args).RunAsync();
