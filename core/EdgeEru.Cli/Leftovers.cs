using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>Removes processes an earlier, crashed <c>eru dev</c> left running (found by its pid files).</summary>
internal static class Leftovers
{
    /// <summary>Kills the process of <paramref name="pidFile"/> if its command line still contains <paramref name="marker"/>.</summary>
    public static void Clean(string pidFile, string marker, ILogger log)
    {
        if (!File.Exists(pidFile)) return;
        if (int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid) && IsOurs(pid, marker))
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit(TimeSpan.FromSeconds(10));
                log.LogWarning("stopped {Name} (pid {Pid}) left running by an earlier eru dev", marker, pid);
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }
        File.Delete(pidFile);
    }

    // A pid may have been reused by an unrelated process since: only kill it if it is the program we started.
    private static bool IsOurs(int pid, string marker)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Split('\0').Any(arg => arg == marker || Path.GetFileName(arg) == marker);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
