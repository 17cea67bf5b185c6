using System.Formats.Tar;
using System.Text;
using System.Text.RegularExpressions;

namespace EdgeEru.Core.Files;

/// <summary>
/// A build context as <c>docker build</c> sends it: a tar of a directory, less what its <c>.dockerignore</c> excludes
/// (the Dockerfile and the .dockerignore always go). Symbolic links go as links, never followed, so nothing outside the
/// directory gets into the context through them; sockets are left out. Written entry by entry to a stream: never held
/// whole in memory.
/// </summary>
public static class BuildContext
{
    /// <summary>The name a Dockerfile from outside the directory gets in the context.</summary>
    public const string OutsideDockerfileName = ".eru-build.Dockerfile";

    /// <summary>
    /// Where the Dockerfile is in the context: <paramref name="file"/> as given relative to the current directory when it
    /// is inside <paramref name="dir"/> (as <c>docker build -f</c> takes it), else relative to <paramref name="dir"/>;
    /// "Dockerfile" when none is given. <c>Outside</c> is the full path of one that lies outside the directory (it is
    /// then added to the context as <see cref="OutsideDockerfileName"/>).
    /// </summary>
    public static (string InContext, string? Outside) LocateDockerfile(string dir, string? file)
    {
        var root = Path.GetFullPath(dir);
        if (string.IsNullOrEmpty(file)) file = Path.Combine(root, "Dockerfile");
        else if (!Path.IsPathRooted(file) && !File.Exists(file)) file = Path.Combine(root, file);
        var full = Path.GetFullPath(file);
        if (!File.Exists(full)) throw new FileNotFoundException($"no Dockerfile at {full}");
        var relative = Path.GetRelativePath(root, full).Replace('\\', '/');
        return relative.StartsWith("../", StringComparison.Ordinal) || relative == ".." || Path.IsPathRooted(relative)
            ? (OutsideDockerfileName, full)
            : (relative, null);
    }

    /// <summary>
    /// Writes the context of <paramref name="dir"/> as a tar to <paramref name="output"/>; <paramref name="dockerfile"/> is
    /// the Dockerfile's path in the context (kept even when ignored). Returns how many entries went in.
    /// </summary>
    public static async Task<int> WriteAsync(string dir, string dockerfile, string? outsideDockerfile, Stream output,
        CancellationToken ct = default)
    {
        var root = Path.GetFullPath(dir);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"no directory {dir}");
        var ignore = File.Exists(Path.Combine(root, ".dockerignore"))
            ? IgnoreRules.Parse(await File.ReadAllLinesAsync(Path.Combine(root, ".dockerignore"), ct))
            : IgnoreRules.None;
        var count = 0;
        var counted = new CountingStream(output);
        await using (var tar = new TarWriter(counted, TarEntryFormat.Pax, leaveOpen: true))
        {
            count += await WriteDirectoryAsync(tar, counted, root, "", ignore, dockerfile, ct);
            if (outsideDockerfile is not null)
            {
                await tar.WriteEntryAsync(outsideDockerfile, OutsideDockerfileName, ct);
                count++;
            }
        }
        return count;
    }

    private static async Task<int> WriteDirectoryAsync(TarWriter tar, CountingStream counted, string root, string prefix,
        IgnoreRules ignore, string dockerfile, CancellationToken ct)
    {
        var count = 0;
        var options = new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = 0, IgnoreInaccessible = false };
        var entries = new DirectoryInfo(Path.Combine(root, prefix)).EnumerateFileSystemInfos("*", options)
            .OrderBy(e => e.Name, StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            ct.ThrowIfCancellationRequested();
            var name = prefix.Length == 0 ? entry.Name : prefix + "/" + entry.Name;
            var excluded = ignore.Excludes(name) && name != dockerfile && name != ".dockerignore";
            if (entry.LinkTarget is { } target)
            {
                // The link itself, never what it points to (which may lie outside the directory).
                if (!excluded) await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target }, ct);
                count += excluded ? 0 : 1;
            }
            else if (entry is DirectoryInfo)
            {
                if (!excluded)
                {
                    await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, name + "/")
                    {
                        Mode = entry.UnixFileMode, ModificationTime = entry.LastWriteTimeUtc,
                    }, ct);
                    count++;
                }
                // An excluded directory is entered only when an exception (!pattern) may take something in it back.
                if (!excluded || ignore.HasExceptions)
                    count += await WriteDirectoryAsync(tar, counted, root, name, ignore, dockerfile, ct);
            }
            else if (!excluded && await TryWriteFileAsync(tar, counted, entry.FullName, name, ct))
            {
                count++;
            }
        }
        return count;
    }

    /// <summary>
    /// Adds a file that is neither a directory nor a link: regular files, and fifos or devices as entries of their kind
    /// (their content is not read). A socket cannot go into a tar: TarWriter refuses it before writing anything, and it
    /// is left out as docker build does; any other failure is rethrown.
    /// </summary>
    private static async Task<bool> TryWriteFileAsync(TarWriter tar, CountingStream output, string path, string name, CancellationToken ct)
    {
        var before = output.Written;
        try
        {
            await tar.WriteEntryAsync(path, name, ct);
            return true;
        }
        catch (IOException) when (output.Written == before && File.Exists(path))
        {
            return false;
        }
    }

    /// <summary>Passes writes on and counts them (to tell a refused entry from one that broke half-way).</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Written += count;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            Written += buffer.Length;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}

/// <summary>
/// The rules of a <c>.dockerignore</c> (as moby's patternmatcher reads them): one pattern a line, <c>#</c> comments,
/// <c>*</c> and <c>?</c> within a path part, <c>**</c> across parts, <c>[...]</c> classes, a leading <c>!</c> takes matches
/// back; the last matching line decides, and a path is matched when it or one of its parent directories is.
/// </summary>
public sealed class IgnoreRules
{
    private readonly List<(Regex Pattern, bool Exception)> _rules;

    private IgnoreRules(List<(Regex, bool)> rules) => _rules = rules;

    public static IgnoreRules None { get; } = new([]);

    public bool HasExceptions => _rules.Any(r => r.Exception);

    public static IgnoreRules Parse(IEnumerable<string> lines)
    {
        var rules = new List<(Regex, bool)>();
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var exception = line.StartsWith('!');
            if (exception) line = line[1..].Trim();
            line = Clean(line);
            if (line.Length == 0) continue;
            rules.Add((new Regex("^" + ToRegex(line) + "$", RegexOptions.CultureInvariant), exception));
        }
        return new IgnoreRules(rules);
    }

    /// <summary>Whether <paramref name="path"/> (relative, '/'-separated) is left out of the context.</summary>
    public bool Excludes(string path)
    {
        var excluded = false;
        var parts = path.Split('/');
        foreach (var (pattern, exception) in _rules)
        {
            // The path or one of its parents.
            var matches = false;
            for (var n = parts.Length; n >= 1 && !matches; n--) matches = pattern.IsMatch(string.Join('/', parts, 0, n));
            if (matches) excluded = !exception;
        }
        return excluded;
    }

    /// <summary>filepath.Clean without a leading "/" or "./": "/a//b/../c/" → "a/c".</summary>
    private static string Clean(string pattern)
    {
        var parts = new List<string>();
        foreach (var part in pattern.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            if (part == ".." && parts.Count > 0) parts.RemoveAt(parts.Count - 1);
            else if (part != "..") parts.Add(part);
        }
        return string.Join('/', parts);
    }

    private static string ToRegex(string pattern)
    {
        var re = new StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*' when i + 1 < pattern.Length && pattern[i + 1] == '*':
                    i++;
                    // "**/" matches no directory too.
                    if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                    {
                        i++;
                        re.Append("(?:.*/)?");
                    }
                    else
                    {
                        re.Append(".*");
                    }
                    break;
                case '*':
                    re.Append("[^/]*");
                    break;
                case '?':
                    re.Append("[^/]");
                    break;
                case '[':
                    var end = pattern.IndexOf(']', i + 1);
                    if (end < 0)
                    {
                        re.Append(@"\[");
                        break;
                    }
                    var set = pattern[(i + 1)..end];
                    var negated = set.StartsWith('^') || set.StartsWith('!');
                    re.Append('[').Append(negated ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                    i = end;
                    break;
                case '\\' when i + 1 < pattern.Length:
                    re.Append(Regex.Escape(pattern[++i].ToString()));
                    break;
                default:
                    re.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        return re.ToString();
    }
}
