using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EdgeEru.Cli;

/// <summary>Removes processes an earlier, crashed <c>eru dev</c> left running (found by its pid files).</summary>
internal static class Leftovers
{
    public static void Clean(string pidFile, string expectedName, ILogger log)
    {
        if (!File.Exists(pidFile)) return;
        if (int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid) && IsOurs(pid, expectedName))
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit(TimeSpan.FromSeconds(10));
                log.LogWarning("stopped {Name} (pid {Pid}) left running by an earlier eru dev", expectedName, pid);
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }
        File.Delete(pidFile);
    }

    // A pid may have been reused by an unrelated process since: only kill it if it is the program we started.
    private static bool IsOurs(int pid, string expectedName)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return Path.GetFileName(cmdline.Split('\0')[0]) == expectedName;
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
