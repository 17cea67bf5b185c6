namespace EdgeEru.Dev;

/// <summary>Finds the external programs the local cluster runs, naming the Debian package when one is missing.</summary>
public static class Tools
{
    public static string Find(string program, string debianPackage)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                     .Concat(["/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
        {
            var path = Path.Combine(dir, program);
            if (File.Exists(path)) return path;
        }
        throw new ToolMissingException(program, debianPackage);
    }
}

public sealed class ToolMissingException(string program, string debianPackage)
    : Exception($"{program} was not found on PATH: install the Debian package {debianPackage} (apt-get install -y {debianPackage})")
{
    public string Program { get; } = program;
    public string DebianPackage { get; } = debianPackage;
}
