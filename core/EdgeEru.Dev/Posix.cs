using System.Runtime.InteropServices;

namespace EdgeEru.Dev;

internal static partial class Posix
{
    private const int SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>Asks a process to stop cleanly (Process.Kill only sends SIGKILL).</summary>
    public static void Terminate(int pid) => _ = Kill(pid, SIGTERM);
}
