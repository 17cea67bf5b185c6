using System.Globalization;

namespace EdgeEru.Perf;

/// <summary>What /proc says of a process: the benchmarks' one reader of it.</summary>
internal static class ProcessStats
{
    /// <summary>Resident set size in kB (VmRSS); 0 for a process that is gone.</summary>
    public static long RssKb(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }
}
