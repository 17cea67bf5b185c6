using System.Diagnostics;
using System.Formats.Tar;
using System.Runtime.InteropServices;

namespace EdgeEru.Dev;

/// <summary>What went into the base image's tar (cached for the process, see <see cref="RuntimeImage.TarAsync"/>).</summary>
/// <param name="Path">The tar file, for <c>docker import</c> or the Engine API's <c>POST /images/create?fromSrc=-</c>.</param>
/// <param name="Bytes">Its size, about the size of the image.</param>
/// <param name="RuntimeVersion">The version of Microsoft.NETCore.App and Microsoft.AspNetCore.App inside.</param>
/// <param name="NativeLibraries">The host's shared libraries copied in: what the runtime needs, what .NET opens with dlopen.</param>
/// <param name="Files">Every regular file of the image and its size.</param>
public sealed record RuntimeImageTar(string Path, long Bytes, string RuntimeVersion, IReadOnlyList<string> NativeLibraries,
    IReadOnlyDictionary<string, long> Files, TimeSpan BuildTime);

/// <summary>
/// The base image EdgeEru's own services run from, <c>edgeeru/dotnet:10</c>, made offline: no image registry is
/// reachable, so it is a rootfs tar for <c>docker import</c>, built from this machine's files. It holds busybox
/// (a shell and the usual tools), the .NET shared runtime this process runs on (Microsoft.NETCore.App and
/// Microsoft.AspNetCore.App of one version, host/fxr and the <c>dotnet</c> muxer, under <see cref="DotnetRoot"/>),
/// and the native libraries they need: what each ELF file of the runtime names in DT_NEEDED, found as the loader
/// finds it, and what .NET opens with dlopen (libssl.so.3 and libcrypto.so.3), each at its host path with the host's
/// symlinks along the way, so the ELF interpreter and the loader's default directories are the same as on the host. No ICU (the image
/// runs with invariant globalization), no libz (.NET 10's compression links zlib-ng in) and no LTTng (the one
/// runtime file that needs it, libcoreclrtraceptprovider.so, is left out; the runtime runs without it).
/// App images go FROM it: <c>COPY app/ /opt/app/</c> and <c>ENTRYPOINT ["dotnet", "/opt/app/app.dll"]</c>.
/// </summary>
public static class RuntimeImage
{
    public const string Name = "edgeeru/dotnet:10";

    /// <summary>Where the runtime lies inside the image (wherever the host keeps it).</summary>
    public const string DotnetRoot = "/usr/share/dotnet";

    /// <summary>The image's environment (as <c>ENV</c> changes of the import).</summary>
    public static IReadOnlyList<string> Env { get; } =
    [
        $"PATH={DotnetRoot}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        $"DOTNET_ROOT={DotnetRoot}",
        "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1", // no ICU in the image
        "DOTNET_gcServer=0", // workstation GC: a service container gets a core or two, not the machine
        "DOTNET_RUNNING_IN_CONTAINER=true", // as Microsoft's images say it (libraries look at it)
    ];

    /// <summary>Busybox applets linked in /bin: enough to look around a container and script a health check.</summary>
    private static readonly string[] Applets =
    [
        "sh", "ash", "ls", "cat", "echo", "printf", "sleep", "hostname", "wget", "nc", "nslookup", "netstat", "ip", "ping",
        "mkdir", "rmdir", "rm", "cp", "mv", "ln", "touch", "chmod", "chown", "true", "false", "test", "[", "ps", "top", "kill",
        "env", "id", "whoami", "uname", "date", "uptime", "free", "df", "du", "nproc", "grep", "sed", "awk", "head", "tail",
        "tr", "wc", "cut", "sort", "uniq", "find", "xargs", "tee", "pwd", "basename", "dirname", "which", "readlink",
        "realpath", "stat", "timeout", "mktemp", "tar", "gzip", "gunzip", "less", "vi", "hexdump",
    ];

    private static readonly string[] Licences = ["LICENSE.txt", "ThirdPartyNotices.txt"];

    /// <summary>What System.Security.Cryptography.Native.OpenSsl opens with dlopen (OpenSSL 3).</summary>
    private static readonly string[] OpenedLibraries = ["libssl.so.3", "libcrypto.so.3"];

    private static readonly Lazy<Task<RuntimeImageTar>> Built = new(() => Task.Run(Build));

    /// <summary>
    /// The image's tar, built once per process into a temporary file (removed when the process exits; one left by a
    /// dead process is removed by the next build). Takes well under a second: it copies ~120 MB of files.
    /// </summary>
    public static Task<RuntimeImageTar> TarAsync(CancellationToken ct = default) => Built.Value.WaitAsync(ct);

    /// <summary>Imports the image into a rig host's dockerd; returns its id.</summary>
    public static Task<string> ImportAsync(DockerHost host, CancellationToken ct = default) => ImportAsync(host.Endpoint, ct);

    /// <summary>
    /// Imports the image through the Engine API (<c>POST /images/create?fromSrc=-</c>, the tar as the body, ENV as
    /// changes: what <c>docker import -c 'ENV …'</c> sends) into an engine at <c>unix://PATH</c> or plain
    /// <c>tcp://HOST:PORT</c>; returns its id. (A TLS engine: import <see cref="TarAsync"/>'s file with the docker CLI.)
    /// </summary>
    public static async Task<string> ImportAsync(string endpoint, CancellationToken ct = default)
    {
        var tar = await TarAsync(ct);
        using var http = EngineHttp.Create(endpoint);
        var colon = Name.LastIndexOf(':');
        var query = new List<string>
        {
            "fromSrc=-", "repo=" + Uri.EscapeDataString(Name[..colon]), "tag=" + Uri.EscapeDataString(Name[(colon + 1)..]),
        };
        query.AddRange(Env.Select(e => "changes=" + Uri.EscapeDataString("ENV " + e)));
        query.Add("changes=" + Uri.EscapeDataString("CMD [\"dotnet\", \"--info\"]"));
        query.Add("message=" + Uri.EscapeDataString($"EdgeEru base image: .NET {tar.RuntimeVersion} runtime, busybox"));
        await using var body = File.OpenRead(tar.Path);
        using var content = new StreamContent(body);
        content.Headers.ContentType = new("application/x-tar");
        content.Headers.ContentLength = tar.Bytes;
        var url = new Uri("/v1.41/images/create?" + string.Join('&', query), UriKind.Relative);
        using var response = await http.PostAsync(url, content, ct);
        var messages = await EngineHttp.MessagesAsync(response, $"importing {Name} into {endpoint}", ct);
        // The last message's status is the new image's id.
        return messages.Select(m => m.TryGetProperty("status", out var s) ? s.GetString() : null)
                   .LastOrDefault(s => s?.StartsWith("sha256:", StringComparison.Ordinal) == true)
               ?? throw new InvalidOperationException($"importing {Name} into {endpoint}: no image id in the answer");
    }

    private static async Task<RuntimeImageTar> Build()
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("the image is made of this Linux machine's files");
        var clock = Stopwatch.StartNew();
        // The runtime this process runs on: <root>/shared/Microsoft.NETCore.App/<version>/.
        var netcore = new DirectoryInfo(RuntimeEnvironment.GetRuntimeDirectory().TrimEnd('/'));
        var version = netcore.Name;
        var root = netcore.Parent?.Parent?.Parent?.FullName
                   ?? throw new InvalidOperationException($"no dotnet root above {netcore.FullName}");
        var muxer = Path.Combine(root, "dotnet");
        if (!File.Exists(muxer))
            throw new InvalidOperationException($"{root} has no dotnet muxer (a self-contained app cannot lend its runtime to an image)");
        var aspnet = Path.Combine(root, "shared", "Microsoft.AspNetCore.App", version);
        if (!Directory.Exists(aspnet))
            throw new InvalidOperationException($"Microsoft.AspNetCore.App {version} is not in {root}: the image needs both frameworks");
        // The muxer takes the highest hostfxr; the image holds one, the runtime's own version when there is one.
        var fxrDir = Path.Combine(root, "host", "fxr");
        var fxr = Directory.Exists(Path.Combine(fxrDir, version))
            ? Path.Combine(fxrDir, version)
            : Directory.GetDirectories(fxrDir).MaxBy(d => Version.TryParse(Path.GetFileName(d).Split('-')[0], out var v) ? v : null)
              ?? throw new InvalidOperationException($"{fxrDir} holds no hostfxr");

        // Runtime files: <image path> ← <host path>.
        var runtime = new List<(string Entry, string Host)> { ("dotnet", muxer) };
        foreach (var file in Licences.Select(f => Path.Combine(root, f)).Where(File.Exists))
            runtime.Add((Path.GetFileName(file), file)); // the licence travels with the binaries
        foreach (var f in Directory.GetFiles(fxr)) runtime.Add(($"host/fxr/{Path.GetFileName(fxr)}/{Path.GetFileName(f)}", f));
        foreach (var (framework, dir) in (ReadOnlySpan<(string, string)>)
                 [("Microsoft.NETCore.App", netcore.FullName), ("Microsoft.AspNetCore.App", aspnet)])
        {
            foreach (var f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                // It needs liblttng-ust; coreclr loads it if it can and runs without LTTng tracing if not.
                if (Path.GetFileName(f) == "libcoreclrtraceptprovider.so") continue;
                runtime.Add(($"shared/{framework}/{version}/{Path.GetRelativePath(dir, f).Replace('\\', '/')}", f));
            }
        }

        // The native libraries: what the runtime's ELF files need, what .NET opens with dlopen, and what those need.
        var libraries = NativeLibraries(runtime.Select(r => r.Host).Where(ElfFile.Is), root);

        var busybox = Tools.Find("busybox", "busybox-static");
        if (ElfFile.Is(busybox) && ElfFile.Read(busybox).Interpreter is not null)
            throw new InvalidOperationException($"{busybox} is linked dynamically: install busybox-static");
        var applets = (await Shell.RunAsync(busybox, ["--list"])).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .ToHashSet(StringComparer.Ordinal);

        CleanStale();
        var path = TarPathOf(Environment.ProcessId);
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            using var image = new ImageWriter(stream, files);
            image.Directory("bin/");
            image.File("bin/busybox", busybox, (UnixFileMode)0b111_101_101);
            foreach (var applet in Applets.Where(applets.Contains)) image.Symlink("bin/" + applet, "busybox");
            image.Directory("tmp/", (UnixFileMode)0b1_111_111_111); // sticky, for everyone: .NET's diagnostics sockets, temp files
            image.Directory("root/", (UnixFileMode)0b111_000_000); // HOME of root (Docker sets it from /etc/passwd)
            image.Text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
            image.Text("etc/group", "root:x:0:\nnogroup:x:65534:\n");
            // Without it glibc asks DNS before /etc/hosts (which Docker writes): "localhost" would go to the resolver.
            image.Text("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
            foreach (var (entry, host) in runtime) image.File($"{DotnetRoot.TrimStart('/')}/{entry}", host);
            foreach (var library in libraries) image.HostPath(library);
        }
        var bytes = new FileInfo(path).Length;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
        return new RuntimeImageTar(path, bytes, version, [.. libraries], files, clock.Elapsed);
    }

    private static string TarPathOf(int pid) => Path.Combine(Path.GetTempPath(), $"eru-dotnet-image-{pid}.tar");

    /// <summary>Removes the tars of processes that died before they could.</summary>
    private static void CleanStale()
    {
        foreach (var file in Directory.EnumerateFiles(Path.GetTempPath(), "eru-dotnet-image-*.tar"))
        {
            var pid = Path.GetFileNameWithoutExtension(file)["eru-dotnet-image-".Length..];
            if (int.TryParse(pid, out var p) && p != Environment.ProcessId && !Directory.Exists($"/proc/{p}"))
                File.Delete(file);
        }
    }

    /// <summary>
    /// The host's shared libraries (paths as the loader finds them, the ELF interpreter among them) that
    /// <paramref name="files"/> load, directly or through each other, and what .NET opens with dlopen and its needs.
    /// Files under <paramref name="dotnetRoot"/> are the runtime's own (libmscordbi.so needs libmscordaccore.so
    /// through $ORIGIN) and are not listed.
    /// </summary>
    private static SortedSet<string> NativeLibraries(IEnumerable<string> files, string dotnetRoot)
    {
        // The image has no ld.so.cache: what the loader finds there, it finds in its default directories.
        var triplet = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x86_64-linux-gnu",
            Architecture.Arm64 => "aarch64-linux-gnu",
            var other => throw new PlatformNotSupportedException($"no image for {other}"),
        };
        string[] defaults = [$"/lib/{triplet}", $"/usr/lib/{triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var queue = new Queue<string>(files);
        foreach (var name in OpenedLibraries)
        {
            var path = defaults.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists)
                       ?? throw new ToolMissingException(name, "libssl3");
            if (found.Add(path)) queue.Enqueue(path);
        }
        while (queue.TryDequeue(out var file))
        {
            var elf = ElfFile.Read(file);
            if (elf.Interpreter is { } interpreter) found.Add(interpreter);
            foreach (var name in elf.Needed)
            {
                var path = name.Contains('/') ? name
                    : elf.SearchPath.Concat(defaults).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists)
                      ?? throw new InvalidOperationException($"{name}, needed by {file}, is in none of the loader's directories");
                if (!path.StartsWith(dotnetRoot + "/", StringComparison.Ordinal) && found.Add(path)) queue.Enqueue(path);
            }
        }
        return found;
    }

    /// <summary>Writes entries once each, owned by root, parents before children.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private sealed class ImageWriter(Stream stream, Dictionary<string, long> files) : IDisposable
    {
        private readonly TarWriter _tar = new(stream, TarEntryFormat.Pax, leaveOpen: true);
        private readonly HashSet<string> _written = new(StringComparer.Ordinal);
        private const UnixFileMode Dir = (UnixFileMode)0b111_101_101, Readable = (UnixFileMode)0b110_100_100;
        private const UnixFileMode Everyone = (UnixFileMode)0b111_111_111;

        public void Directory(string name, UnixFileMode mode = Dir)
        {
            name = name.TrimEnd('/');
            if (!_written.Add(name)) return;
            Parents(name);
            _tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name + "/") { Mode = mode, ModificationTime = Stamp });
        }

        public void Symlink(string name, string target)
        {
            if (!_written.Add(name)) return;
            Parents(name);
            _tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, name)
            {
                LinkName = target, Mode = Everyone, ModificationTime = Stamp,
            });
        }

        public void File(string name, string hostPath, UnixFileMode? mode = null)
        {
            if (!_written.Add(name)) return;
            Parents(name);
            var info = new FileInfo(hostPath);
            using var data = info.OpenRead(); // follows a symlink: a file of the runtime is copied as what it is
            _tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
            {
                Mode = mode ?? (System.IO.File.GetUnixFileMode(hostPath) & Everyone),
                ModificationTime = info.LastWriteTimeUtc,
                DataStream = data,
            });
            files[name] = info.Length;
        }

        public void Text(string name, string text)
        {
            if (!_written.Add(name)) return;
            Parents(name);
            using var data = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
            _tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
            {
                Mode = Readable, ModificationTime = Stamp, DataStream = data,
            });
            files[name] = data.Length;
        }

        /// <summary>
        /// Copies a host file to the same path, walking the path as the kernel does: a symlink on the way
        /// (/lib → usr/lib, /lib64/ld-linux-x86-64.so.2 → …, libstdc++.so.6 → libstdc++.so.6.0.30) becomes the same
        /// symlink in the image and the walk goes on at its target, so every name the loader opens resolves there too.
        /// </summary>
        public void HostPath(string path, int depth = 0)
        {
            if (depth > 40) throw new IOException($"too many symlinks resolving {path}");
            var parts = path.Trim('/').Split('/');
            var current = "/";
            for (var i = 0; i < parts.Length; i++)
            {
                var next = Path.Combine(current, parts[i]);
                var info = new FileInfo(next);
                if (info.LinkTarget is { } target)
                {
                    Symlink(next.TrimStart('/'), target);
                    var rest = string.Join('/', parts[(i + 1)..]);
                    var resolved = Path.IsPathRooted(target) ? target : Path.Combine(current, target);
                    HostPath(Path.GetFullPath(Path.Combine(resolved, rest)), depth + 1);
                    return;
                }
                if (i < parts.Length - 1) Directory(next.TrimStart('/'), System.IO.File.GetUnixFileMode(next) & Everyone);
                else File(next.TrimStart('/'), next);
                current = next;
            }
        }

        private void Parents(string name)
        {
            var slash = name.LastIndexOf('/');
            if (slash > 0) Directory(name[..slash]);
        }

        public void Dispose() => _tar.Dispose(); // writes the end of the archive

        /// <summary>One time for what the image makes up itself: the same machine writes the same entries.</summary>
        private static readonly DateTimeOffset Stamp = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    }
}
