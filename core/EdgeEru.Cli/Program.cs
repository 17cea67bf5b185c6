using System.CommandLine;
using System.Runtime.InteropServices;
using EdgeEru.Cli;

// Ctrl-C, SIGTERM and SIGHUP cancel the running command, which then stops what it started;
// the process exits only when the command returns (System.CommandLine's own handler would not wait).
using var shutdown = new CancellationTokenSource();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);

var root = new RootCommand("eru: the EdgeEru command line")
{
    DevCommand.Create(),
    LbCommand.Create(),
    PsCommand.Create(),
    PodNodeCommands.Pod(),
    PodNodeCommands.Node(),
    LogsCommand.Create(),
    SshUserCommand.Create(),
    DnsCommand.Create(),
    TokenCommands.Create(),
};
root.Options.Add(CoreApi.Datacenter); // eru --dc NAME <command>: every command that talks to eru-core
root.Subcommands.Add(BuildCommand.Create());
foreach (var command in DeployCommands.Create().Concat(JobCommands.Create()).Concat(SecretCommands.Create())) root.Subcommands.Add(command);
var parsed = root.Parse(args);
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, shutdown.Token);

void Stop(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    shutdown.Cancel();
}
