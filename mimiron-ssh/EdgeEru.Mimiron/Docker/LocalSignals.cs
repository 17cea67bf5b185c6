using System.Runtime.InteropServices;

namespace EdgeEru.Mimiron.Docker;

/// <summary>
/// Signals to an exec'd process. The Docker API has none for execs, but exec inspect gives the process's host PID: when
/// the node's engine is on this machine (a unix:// endpoint, the gateway in the host PID namespace) the gateway signals
/// that PID itself. For remote engines signals are not delivered (and the client is not told otherwise, as sshd does).
/// </summary>
internal static partial class LocalSignals
{
    // RFC 4254 §6.10 names, without SIG.
    private static readonly Dictionary<string, int> Numbers = new(StringComparer.Ordinal)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["ILL"] = 4, ["ABRT"] = 6, ["FPE"] = 8, ["KILL"] = 9, ["USR1"] = 10, ["SEGV"] = 11,
        ["USR2"] = 12, ["PIPE"] = 13, ["ALRM"] = 14, ["TERM"] = 15,
    };

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public static bool IsLocal(string endpointAddress) => endpointAddress.StartsWith("unix://", StringComparison.Ordinal);

    /// <summary>Sends the named signal to a host PID; false when the name is unknown or the process is not ours to signal.</summary>
    public static bool TrySend(long hostPid, string name)
    {
        if (hostPid <= 1 || hostPid > int.MaxValue || !Numbers.TryGetValue(name, out var n)) return false;
        return Kill((int)hostPid, n) == 0;
    }
}
