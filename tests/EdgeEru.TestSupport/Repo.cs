namespace EdgeEru.TestSupport;

/// <summary>The checkout the tests run from (docs, examples and built binaries live there).</summary>
public static class Repo
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EdgeEru.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("EdgeEru.sln not found above " + AppContext.BaseDirectory);
    }
}
