namespace EdgeEru.Lb.Tests;

/// <summary>How the tests' backend web servers are built.</summary>
internal static class Backend
{
    /// <summary>No appsettings file watcher: inotify instances are a small per-user limit shared by everything on the machine.</summary>
    public static readonly string[] Args = ["--hostBuilder:reloadConfigOnChange=false"];
}
