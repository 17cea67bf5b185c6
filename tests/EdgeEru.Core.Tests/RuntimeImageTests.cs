using System.Diagnostics;
using System.Formats.Tar;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// One simulated host with the base image imported, a busybox web server as the workload the services find, and a
/// real etcd that listens on the rig's bridge address too: containers on the macvlan network reach the root
/// namespace only there (their parent is the host's veth on the rig's bridge; loopback is their own).
/// </summary>
public sealed class RuntimeImageRig : IAsyncLifetime
{
    private DockerRig? _rig;
    private EtcdServer? _etcd;

    public DockerRig Rig => _rig ?? throw new InvalidOperationException("not started");
    public DockerHost Host => Rig.Hosts[0];
    public EtcdServer Etcd => _etcd ?? throw new InvalidOperationException("not started");

    /// <summary>etcd as the containers see it.</summary>
    public string EtcdFromContainers => $"http://{Rig.BridgeAddress}:{Etcd.ClientPort}";

    public string BackendAddress => Host.ContainerAddress(10);
    public TimeSpan ImportTime { get; private set; }

    public async Task InitializeAsync()
    {
        _rig = await DockerRig.StartAsync(hosts: 1);
        // After the rig: etcd binds the bridge's address, which exists from now on.
        _etcd = await EtcdServer.StartAsync(new EtcdServerOptions { ExtraClientAddresses = [Rig.BridgeAddress] });
        await RuntimeImage.TarAsync(); // built apart from the import, to time them apart
        var clock = Stopwatch.StartNew();
        await RuntimeImage.ImportAsync(Host);
        ImportTime = clock.Elapsed;
        await Host.DockerAsync(["run", "-d", "--name", "backend", "--network", DockerRig.Network, "--ip", BackendAddress, DockerRig.Image,
            "sh", "-c", "mkdir -p /www; echo hello from the backend > /www/index.html; exec httpd -f -p 80 -h /www"]);
    }

    public async Task DisposeAsync()
    {
        if (_rig is not null) await _rig.DisposeAsync();
        if (_etcd is not null) await _etcd.DisposeAsync();
    }
}

/// <summary>
/// The base image <c>edgeeru/dotnet:10</c> and our own services in images built FROM it, run on a simulated host
/// and following the registry in the root namespace's etcd: the way the platform will host its own edge.
/// </summary>
/// <remarks>
/// What the rig's dockerd (20.10, API 1.41, vfs storage, <c>--bridge=none</c>) does with builds, for <c>eru build</c>:
/// the classic builder (<c>POST /build?version=1</c>, or <c>DOCKER_BUILDKIT=0 docker build</c>) works on vfs. vfs has
/// no copy-on-write: every layer and every container's layers are full copies of the image below, so each
/// costs the base's ~120 MB of disk and about a second to copy. A COPY-only Dockerfile needs no network: it builds
/// with <c>networkmode=none</c> (and with the default). RUN steps get, without an error: "default", "bridge" (no
/// bridge exists) and "none" only loopback; "host" the host's namespace (its veth on the rig's bridge, so the
/// root namespace's bridge address); a macvlan network by name (<c>networkmode=eru-mv</c>) an address of the
/// host's range and the reach of any container. Nothing on the rig reaches the internet, so RUN steps that
/// download cannot work anyway. (busybox-static's wget crashes when a connection fails or times out: a RUN
/// step that probes the network with it sees "Segmentation fault", not a clean error.)
/// </remarks>
[Collection(AppsRigCollection.Name)]
public sealed class RuntimeImageTests(RuntimeImageRig rig, ITestOutputHelper output) : IClassFixture<RuntimeImageRig>
{
    private const string Domain = "hello.eru.local";

    [Fact]
    public async Task Base_image_holds_the_runtime_and_exactly_its_libraries()
    {
        var tar = await RuntimeImage.TarAsync();
        output.WriteLine($"tar {tar.Bytes / 1e6:F1} MB, built in {tar.BuildTime.TotalSeconds:F2} s, "
                         + $"imported in {rig.ImportTime.TotalSeconds:F2} s");
        foreach (var group in tar.Files.GroupBy(f => Part(f.Key)).OrderByDescending(g => g.Sum(f => f.Value)))
            output.WriteLine($"  {group.Key}: {group.Count()} files, {group.Sum(f => f.Value) / 1e6:F1} MB");
        output.WriteLine("native libraries: " + string.Join(' ', tar.NativeLibraries));
        output.WriteLine($"image size: {await rig.Host.DockerAsync(["image", "inspect", "-f", "{{.Size}}", RuntimeImage.Name])}");

        Assert.Contains(tar.NativeLibraries, l => l.EndsWith("/libssl.so.3", StringComparison.Ordinal));
        Assert.Contains(tar.NativeLibraries, l => l.Contains("/ld-linux", StringComparison.Ordinal));
        Assert.DoesNotContain(tar.NativeLibraries, l => l.Contains("libicu", StringComparison.Ordinal));
        Assert.True(tar.Bytes < 160_000_000, $"the base image grew to {tar.Bytes} bytes");
        Assert.True(tar.BuildTime < TimeSpan.FromSeconds(20), $"building the tar took {tar.BuildTime}");
        // The image reads DT_NEEDED itself; ldd (the loader's own answer on this machine) must agree, file for file.
        Assert.Equal(await RealPaths(await LddAsync(tar)), await RealPaths(tar.NativeLibraries));

        // The muxer finds both frameworks, and the loader every library without an ld.so.cache.
        var runtimes = await rig.Host.DockerAsync(["run", "--rm", "--network", "none", RuntimeImage.Name, "dotnet", "--list-runtimes"]);
        foreach (var framework in new[] { "Microsoft.NETCore.App", "Microsoft.AspNetCore.App" })
        {
            var line = $"{framework} {tar.RuntimeVersion} [{RuntimeImage.DotnetRoot}/shared/{framework}]";
            Assert.Contains(line, runtimes, StringComparison.Ordinal);
        }
        // busybox, the users, /tmp and the environment.
        var shell = await rig.Host.DockerAsync(["run", "--rm", "--network", "none", "-u", "nobody", RuntimeImage.Name, "sh", "-c",
            "stat -c %a /tmp; id -un; echo $HOME $DOTNET_ROOT $DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"]);
        Assert.Equal($"1777\nnobody\n/nonexistent {RuntimeImage.DotnetRoot} 1\n", shell);
    }

    [Fact]
    public async Task Eru_dns_runs_in_an_image_from_it_and_answers_the_registry_s_names()
    {
        var image = await BuildAppImageAsync("eru-dns", Path.Combine(Repo.Root, "dns", "EdgeEru.Dns", "bin", "Release", "net10.0"));
        await using var registry = await LiveWorkloadAsync();
        var address = rig.Host.ContainerAddress(20);
        var clock = Stopwatch.StartNew();
        // Settings by flag and by environment variable alike (standard .NET configuration).
        await rig.Host.DockerAsync(["run", "-d", "--name", "eru-dns", "--network", DockerRig.Network, "--ip", address, "--memory", "256m",
            "-e", "Registry__Endpoints=" + rig.EtcdFromContainers, "-e", "Registry__Prefix=" + registry.Prefix,
            image, "--Dns:Listen", "0.0.0.0", "--Dns:Port", "53", "--Http:Urls", "http://0.0.0.0:9153"]);

        var dig = Tools.Find("dig", "bind9-dnsutils");
        var answer = await Until(async () =>
        {
            var a = (await Shell.RunAsync(dig, [$"@{address}", "web.hello.eru", "+short", "+time=1", "+tries=1"])).Trim();
            return a.Length > 0 ? a : null;
        }, "eru-dns in its container answers web.hello.eru");
        output.WriteLine($"eru-dns answered {clock.Elapsed.TotalSeconds:F1} s after docker run");
        Assert.Equal(rig.BackendAddress, answer);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        using var health = await http.GetAsync(new Uri($"http://{address}:9153/healthz"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        output.WriteLine("eru-dns /healthz: " + await health.Content.ReadAsStringAsync());
        await ReportAsync("eru-dns", image);
    }

    [Fact]
    public async Task Eru_lb_runs_in_an_image_from_it_and_routes_plain_and_tls_to_the_workload()
    {
        var image = await BuildAppImageAsync("eru-lb", Path.Combine(Repo.Root, "lb", "EdgeEru.Lb", "bin", "Release", "net10.0"));
        await using var registry = await LiveWorkloadAsync();
        await registry.Store.PutAsync(Kinds.LbDomains, Samples.LbDomain(Domain));
        // TLS termination needs OpenSSL, which .NET opens with dlopen: the image must hold libssl.so.3 and libcrypto.so.3.
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={Domain}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(Domain);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        await registry.Store.PutAsync(Kinds.LbCertificates,
            new LbCertificate { Name = "hello", Certificate = cert.ExportCertificatePem(), Key = key.ExportPkcs8PrivateKeyPem() });

        var address = rig.Host.ContainerAddress(21);
        var clock = Stopwatch.StartNew();
        await rig.Host.DockerAsync(["run", "-d", "--name", "eru-lb", "--network", DockerRig.Network, "--ip", address,
            "--memory", "256m", image,
            "--Registry:Endpoints", rig.EtcdFromContainers, "--Registry:Prefix", registry.Prefix,
            "--Lb:Urls", "http://0.0.0.0:8080", "--Lb:Tls:Urls", "https://0.0.0.0:8443", "--Lb:AdminUrls", "http://0.0.0.0:9181",
            "--Lb:AdminToken", "t", "--Http:Urls", "http://0.0.0.0:9180"]);

        // Every connection goes to the container; the URL's host name is the Host header and the SNI.
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (ctx, ct) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), ctx.DnsEndPoint.Port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = { RemoteCertificateValidationCallback = (_, c, _, _) => c?.GetCertHashString() == cert.GetCertHashString() },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
        var health = await Until(async () =>
        {
            using var r = await http.GetAsync(new Uri($"http://{address}:9180/healthz"));
            return r.StatusCode == HttpStatusCode.OK ? await r.Content.ReadAsStringAsync() : null;
        }, "eru-lb in its container is healthy");
        output.WriteLine($"eru-lb healthy {clock.Elapsed.TotalSeconds:F1} s after docker run: {health}");
        const string expected = "hello from the backend\n";
        Assert.Equal(expected, await Until(async () => await http.GetStringAsync(new Uri($"http://{Domain}:8080/")), "routes over HTTP"));
        Assert.Equal(expected, await Until(async () => await http.GetStringAsync(new Uri($"https://{Domain}:8443/")), "routes over TLS"));
        health = await http.GetStringAsync(new Uri($"http://{address}:9180/healthz"));
        output.WriteLine("eru-lb /healthz after routing: " + health);
        Assert.Contains("\"registry_in_touch\":true", health, StringComparison.Ordinal);
        await ReportAsync("eru-lb", image);
    }

    /// <summary>What ldd says the runtime's ELF files (less the LTTng provider the image leaves out) and OpenSSL load.</summary>
    private static async Task<IReadOnlyList<string>> LddAsync(RuntimeImageTar tar)
    {
        var netcore = RuntimeEnvironment.GetRuntimeDirectory();
        var root = Path.GetFullPath(Path.Combine(netcore, "..", "..", ".."));
        var openssl = tar.NativeLibraries
            .Where(l => l.Contains("/libssl.", StringComparison.Ordinal) || l.Contains("/libcrypto.", StringComparison.Ordinal)).ToList();
        var files = new[] { Path.Combine(root, "dotnet") }
            .Concat(Directory.GetFiles(Path.Combine(root, "host", "fxr", tar.RuntimeVersion)))
            .Concat(Directory.GetFiles(netcore).Where(f => !f.EndsWith("/libcoreclrtraceptprovider.so", StringComparison.Ordinal)))
            .Concat(Directory.GetFiles(Path.Combine(root, "shared", "Microsoft.AspNetCore.App", tar.RuntimeVersion)))
            .Where(f => File.ReadAllBytes(f).AsSpan(0, 4).SequenceEqual("\u007fELF"u8))
            .Concat(openssl)
            .ToList();
        var listed = await Shell.RunAsync(Tools.Find("ldd", "libc-bin"), files);
        Assert.DoesNotContain("not found", listed, StringComparison.Ordinal);
        // "\tlibc.so.6 => /lib/…/libc.so.6 (0x…)", "\t/lib64/ld-linux-x86-64.so.2 (0x…)"; the vdso has no file.
        return listed.Split('\n')
            .Where(l => l.StartsWith('\t'))
            .Select(l => l.Contains("=>", StringComparison.Ordinal) ? l[(l.IndexOf("=>", StringComparison.Ordinal) + 2)..] : l)
            .Select(l => l.Trim().Split(' ')[0])
            .Where(p => p.StartsWith('/') && !p.StartsWith(root + "/", StringComparison.Ordinal))
            .Concat(openssl)
            .ToList();
    }

    private static async Task<string[]> RealPaths(IEnumerable<string> paths) =>
        (await Shell.RunAsync(Tools.Find("realpath", "coreutils"), paths))
        .Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Builds <c>edgeeru/NAME:test</c> FROM the base image with <paramref name="buildOutput"/> in /opt/NAME, through the
    /// Engine API's classic builder (what <c>eru build</c> will send): a tar of the Dockerfile and the files, no network.
    /// </summary>
    private async Task<string> BuildAppImageAsync(string name, string buildOutput)
    {
        Assert.True(File.Exists(Path.Combine(buildOutput, name + ".dll")), $"no {name}.dll in {buildOutput}: build the solution");
        var tag = $"edgeeru/{name}:test";
        using var context = new MemoryStream();
        using (var tar = new TarWriter(context, TarEntryFormat.Pax, leaveOpen: true))
        {
            var dockerfile = $"FROM {RuntimeImage.Name}\nCOPY app/ /opt/{name}/\nENTRYPOINT [\"dotnet\", \"/opt/{name}/{name}.dll\"]\n";
            using var data = new MemoryStream(Encoding.UTF8.GetBytes(dockerfile));
            await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "Dockerfile")
            {
                Mode = (UnixFileMode)0b110_100_100, DataStream = data,
            });
            foreach (var file in Directory.GetFiles(buildOutput, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                await tar.WriteEntryAsync(file, "app/" + Path.GetRelativePath(buildOutput, file));
        }
        context.Position = 0;
        var clock = Stopwatch.StartNew();
        using var engine = EngineHttp.Create(rig.Host.Endpoint);
        using var body = new StreamContent(context);
        body.Headers.ContentType = new("application/x-tar");
        using var response = await engine.PostAsync(
            new Uri($"/v1.41/build?version=1&networkmode=none&rm=1&forcerm=1&t={Uri.EscapeDataString(tag)}", UriKind.Relative), body);
        var messages = await EngineHttp.MessagesAsync(response, "building " + tag, default);
        output.WriteLine($"built {tag} from a {context.Length / 1e6:F1} MB context in {clock.Elapsed.TotalSeconds:F1} s:");
        foreach (var m in messages)
        {
            if (m.TryGetProperty("stream", out var s) && s.GetString()?.Trim() is { Length: > 0 } line) output.WriteLine("  " + line);
        }
        return tag;
    }

    /// <summary>A registry prefix with one workload of app hello (the busybox web server), running and healthy on a live node.</summary>
    private async Task<LiveRegistry> LiveWorkloadAsync()
    {
        var prefix = EtcdFixture.NewPrefix();
        var conn = new EtcdConnection(new RegistryOptions
        {
            Endpoints = rig.Etcd.ClientUrl, Prefix = prefix, RequestTimeout = TimeSpan.FromSeconds(15),
        });
        var store = new RegistryStore(conn);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await store.PutAsync(Kinds.NodeStatus, Samples.NodeStatus("n1"), lease.Id);
        var tx = store.Begin();
        tx.Put(Kinds.Workloads, Samples.Workload("w1", app: "hello", ip: rig.BackendAddress));
        tx.Put(Kinds.WorkloadStatus, Samples.Status("w1", ip: rig.BackendAddress), lease.Id);
        await tx.CommitAsync();
        return new LiveRegistry(prefix, conn, store, lease);
    }

    private sealed record LiveRegistry(string Prefix, EtcdConnection Conn, RegistryStore Store, RegistryLease Lease) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Lease.DisposeAsync();
            Conn.Dispose();
        }
    }

    /// <summary>Writes what the service costs in its container: memory three ways, its image, the host's vfs on disk.</summary>
    private async Task ReportAsync(string container, string image)
    {
        var stats = (await rig.Host.DockerAsync(["stats", "--no-stream", "--format", "{{.MemUsage}}", container])).Trim();
        var cgroup = (await rig.Host.DockerAsync(["exec", container, "sh", "-c",
            "cat /sys/fs/cgroup/memory.current 2>/dev/null || cat /sys/fs/cgroup/memory/memory.usage_in_bytes"])).Trim();
        var rss = (await rig.Host.DockerAsync(["exec", container, "grep", "VmRSS", "/proc/1/status"])).Trim();
        var size = long.Parse((await rig.Host.DockerAsync(["image", "inspect", "-f", "{{.Size}}", image])).Trim());
        var vfs = Path.Combine(Path.GetDirectoryName(rig.Host.SocketPath)!, "data", "vfs");
        var disk = (await Shell.RunAsync(Tools.Find("du", "coreutils"), ["-sm", vfs])).Split('\t')[0];
        output.WriteLine($"{container}: docker stats {stats}; cgroup usage {long.Parse(cgroup) / 1e6:F1} MB; PID 1 {rss}; "
                         + $"image {size / 1e6:F1} MB; the host's vfs now {disk} MB on disk");
    }

    private static string Part(string entry) => entry switch
    {
        _ when entry.Contains("/Microsoft.NETCore.App/", StringComparison.Ordinal) => "Microsoft.NETCore.App",
        _ when entry.Contains("/Microsoft.AspNetCore.App/", StringComparison.Ordinal) => "Microsoft.AspNetCore.App",
        _ when entry.StartsWith("usr/share/dotnet/", StringComparison.Ordinal) => "muxer, hostfxr, licences",
        _ when entry.StartsWith("bin/", StringComparison.Ordinal) => "busybox",
        _ when entry.StartsWith("etc/", StringComparison.Ordinal) => "etc",
        _ => "native libraries",
    };

    private static async Task<T> Until<T>(Func<Task<T?>> attempt, string what) where T : class =>
        await Eventually.Value(async () =>
        {
            try
            {
                return await attempt();
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or CommandFailedException or IOException)
            {
                return null; // starting, or a first ARP exchange
            }
        }, TimeSpan.FromSeconds(30), what);
}
