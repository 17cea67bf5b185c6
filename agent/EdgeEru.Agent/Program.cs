using EdgeEru.Agent;
using Microsoft.Extensions.Options;

// eru-agent: one per Docker host. Config: appsettings.json, ERU_* env vars, --Section:Key flags.
try
{
    await AgentHost.Create(args).RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    foreach (var failure in ex.Failures) await Console.Error.WriteLineAsync("eru-agent: " + failure);
    return 2;
}
