using EdgeEru.Core.Server;

await CoreHost.Create(args).RunAsync();
