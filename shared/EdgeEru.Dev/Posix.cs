using System.Runtime.InteropServices;

namespace EdgeEru.Dev;

/// <summary>Signals for processes the rig (and tests) started.</summary>
public static partial class Posix
{
    private const int SIGINT = 2, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>Asks a process to stop cleanly (Process.Kill only sends SIGKILL).</summary>
    public static void Terminate(int pid) => _ = Kill(pid, SIGTERM);

    /// <summary>What Ctrl-C sends.</summary>
    public static void Interrupt(int pid) => _ = Kill(pid, SIGINT);

    /// <summary>Freezes a process (a stalled etcd: a long GC, a frozen VM) until <see cref="Resume"/>.</summary>
    public static void Freeze(int pid) => _ = Kill(pid, SIGSTOP);

    public static void Resume(int pid) => _ = Kill(pid, SIGCONT);
}
