using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;
using EdgeEru.Registry.Model;

namespace EdgeEru.Docker;

/// <summary>A container to create: what Core decided for one instance.</summary>
public sealed record ContainerSpec
{
    public required string Name { get; init; }
    public required string Image { get; init; }
    public IReadOnlyList<string> Command { get; init; } = [];
    public IReadOnlyList<string> Env { get; init; } = [];
    public string? User { get; init; }
    public string? WorkingDir { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Docker network → fixed IPv4 address, or "" for one the driver picks.</summary>
    public IReadOnlyDictionary<string, string> Networks { get; init; } = new Dictionary<string, string>();

    /// <summary>Docker network (one of <see cref="Networks"/>) → fixed IPv6 address; on the others the driver picks.</summary>
    public IReadOnlyDictionary<string, string> Networks6 { get; init; } = new Dictionary<string, string>();

    public long MemoryLimit { get; init; }

    /// <summary>CFS quota in cores (unbound workloads); 0: none.</summary>
    public double CpuQuota { get; init; }

    /// <summary>Bound cores ("2,3"); null for the shared pool.</summary>
    public string? Cpuset { get; init; }

    public string? CpusetMems { get; init; }

    /// <summary>Docker restart policy: no, always, on-failure, unless-stopped ("" = no).</summary>
    public string Restart { get; init; } = "";

    /// <summary>Named volumes (created beforehand by <see cref="DockerEngine.EnsureVolumeAsync"/>) and bind mounts.</summary>
    public IReadOnlyList<VolumeMount> Mounts { get; init; } = [];

    /// <summary>Files written into the container after it is created and before it starts (data files, secrets).</summary>
    public IReadOnlyList<ContainerFile> Files { get; init; } = [];

    /// <summary>Privileges, kernel settings, name resolution, limits and logs.</summary>
    public RuntimeOptions Runtime { get; init; } = new();
}

/// <summary>How a container runs beyond its image and command: what an app spec says of it, as Docker takes it.</summary>
public sealed record RuntimeOptions
{
    public bool Privileged { get; init; }
    public IReadOnlyList<string> CapAdd { get; init; } = [];
    public IReadOnlyDictionary<string, string> Sysctls { get; init; } = new Dictionary<string, string>();
    public IReadOnlyList<string> Dns { get; init; } = [];

    /// <summary>"name:address" lines for the container's /etc/hosts.</summary>
    public IReadOnlyList<string> ExtraHosts { get; init; } = [];
    public IReadOnlyList<UlimitSpec> Ulimits { get; init; } = [];

    /// <summary>Docker's log driver ("" = the engine's default) and its options.</summary>
    public string LogDriver { get; init; } = "";
    public IReadOnlyDictionary<string, string> LogOptions { get; init; } = new Dictionary<string, string>();
}

/// <summary>A file to put into a container: absolute path, content, mode and numeric owner.</summary>
public sealed record ContainerFile(string Path, byte[] Content, int Mode, int Uid, int Gid);

/// <summary>A resource limit (<c>nofile</c>, <c>nproc</c>, ...): soft and hard (-1: unlimited).</summary>
public sealed record UlimitSpec(string Name, long Soft, long Hard)
{
    /// <summary>The limits Docker (setrlimit) knows.</summary>
    public static readonly IReadOnlyList<string> Known =
        [
            "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime",
            "sigpending", "stack",
        ];

    /// <summary>"1024" (soft = hard) or "1024:2048", "-1" for unlimited.</summary>
    public static UlimitSpec Parse(string name, string text, string where)
    {
        var parts = text.Split(':');
        if (parts.Length > 2 || !long.TryParse(parts[0], out var soft) || !long.TryParse(parts[^1], out var hard))
            throw new FormatException($"{where}: \"{text}\" must be SOFT or SOFT:HARD (numbers, -1 for unlimited)");
        return new UlimitSpec(name, soft, hard);
    }
}

/// <summary>What a command run inside a container (docker exec) returned.</summary>
public sealed record ExecResult(long ExitCode, string Output);

/// <summary>What Docker says about a container.</summary>
public sealed record ContainerState(string Id, string Name, bool Running, IReadOnlyDictionary<string, string> Addresses,
    long MemoryLimit, string Cpuset, long CpuQuota, IReadOnlyDictionary<string, string> Labels)
{
    /// <summary>The container's init process on the host (0 when not running): where its cgroup and network counters are found.</summary>
    public int Pid { get; init; }

    /// <summary>When the current (or last) run started; a new value means the container was restarted.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Network → the container's global IPv6 address on it (Docker's GlobalIPv6Address); empty without IPv6.</summary>
    public IReadOnlyDictionary<string, string> Addresses6 { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A container event from the engine: <c>start</c>, <c>die</c>, <c>oom</c>, <c>destroy</c>, <c>health_status: healthy</c>...
/// </summary>
public sealed record ContainerEvent(string Id, string Action, IReadOnlyDictionary<string, string> Attributes);

/// <summary>One sample of <c>docker stats</c> (the fallback where cgroups are not readable).</summary>
public sealed record ContainerStatsSample(
    long MemoryBytes, double CpuSeconds, long NetRxBytes, long NetTxBytes, long BlockReadBytes, long BlockWriteBytes);

/// <summary>A node's Docker engine through the Engine API (Docker.DotNet): how Core, the agents and the SSH gateway reach Docker.</summary>
public sealed partial class DockerEngine : IDisposable, IDockerEngine
{
    /// <summary>Labels that mark what EdgeEru created.</summary>
    public const string AppLabel = "eru.app", EntrypointLabel = "eru.entrypoint", IdentLabel = "eru.ident", NodeLabel = "eru.node";

    /// <summary>On a named volume: the spec's volume name it was made for.</summary>
    public const string VolumeLabel = "eru.volume";

    /// <summary>The registry that owns it (etcd's cluster id and the prefix): the reaper touches nothing of another's.</summary>
    public const string RegistryLabel = "eru.registry";

    private const long CfsPeriod = 100_000;
    private readonly DockerClient _client;

    public DockerEngine(DockerEndpoint endpoint) =>
        _client = DockerConnections.Configure(endpoint, TimeSpan.FromSeconds(60)).CreateClient();

    /// <summary>The engine's CPUs and memory (a node added without capacity takes these).</summary>
    public async Task<(int Cpus, long Memory, string Version)> InfoAsync(CancellationToken ct = default)
    {
        var info = await _client.System.GetSystemInfoAsync(ct);
        return ((int)info.NCPU, info.MemTotal, info.ServerVersion);
    }

    /// <summary>Creates and starts a container; if anything after the create fails, the container is removed again.</summary>
    public async Task<string> CreateAndStartAsync(ContainerSpec spec, CancellationToken ct = default)
    {
        var id = await CreateAsync(spec, ct);
        try
        {
            await _client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
            return id;
        }
        catch
        {
            await RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// Creates a container, attached to its networks and with its files written, not started (a job attaches
    /// to its output before it starts); if anything after the create fails, the container is removed again.
    /// </summary>
    public async Task<string> CreateAsync(ContainerSpec spec, CancellationToken ct = default)
    {
        foreach (var (network, ip6) in spec.Networks6)
        {
            if (!spec.Networks.ContainsKey(network))
                throw new InvalidOperationException($"fixed IPv6 address {ip6} is for network {network}, which it does not join");
            var ipam = (await _client.Networks.InspectNetworkAsync(network, ct)).IPAM?.Config ?? [];
            if (IPv6Problem(network, ip6, ipam.Select(c => c.Subnet)) is { } problem) throw new InvalidOperationException(problem);
        }
        var endpoints = spec.Networks.ToDictionary(n => n.Key, n =>
        {
            var ip6 = spec.Networks6.GetValueOrDefault(n.Key) ?? "";
            return new EndpointSettings
            {
                IPAMConfig = n.Value.Length > 0 || ip6.Length > 0
                    ? new EndpointIPAMConfig
                    {
                        IPv4Address = n.Value.Length > 0 ? n.Value : null, IPv6Address = ip6.Length > 0 ? ip6 : null,
                    }
                    : null,
            };
        });
        var created = await _client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = spec.Name,
            Image = spec.Image,
            Cmd = spec.Command.Count > 0 ? [.. spec.Command] : null,
            Env = [.. spec.Env],
            User = spec.User,
            WorkingDir = spec.WorkingDir,
            Labels = spec.Labels.ToDictionary(),
            HostConfig = new HostConfig
            {
                Mounts = spec.Mounts.Count == 0 ? null : [.. spec.Mounts.Select(m => new Mount
                {
                    Type = m.Kind, Source = m.Source, Target = m.Target, ReadOnly = m.ReadOnly,
                })],
                Privileged = spec.Runtime.Privileged,
                CapAdd = spec.Runtime.CapAdd.Count == 0 ? null : [.. spec.Runtime.CapAdd],
                Sysctls = spec.Runtime.Sysctls.Count == 0 ? null : spec.Runtime.Sysctls.ToDictionary(),
                DNS = spec.Runtime.Dns.Count == 0 ? null : [.. spec.Runtime.Dns],
                ExtraHosts = spec.Runtime.ExtraHosts.Count == 0 ? null : [.. spec.Runtime.ExtraHosts],
                Ulimits = spec.Runtime.Ulimits.Count == 0 ? null
                    : [.. spec.Runtime.Ulimits.Select(u => new Ulimit { Name = u.Name, Soft = u.Soft, Hard = u.Hard })],
                LogConfig = spec.Runtime.LogDriver.Length == 0 ? null
                    : new LogConfig { Type = spec.Runtime.LogDriver, Config = spec.Runtime.LogOptions.ToDictionary() },
                Memory = spec.MemoryLimit,
                MemorySwap = spec.MemoryLimit > 0 ? spec.MemoryLimit : 0, // no swap beyond the limit
                CPUPeriod = spec.CpuQuota > 0 ? CfsPeriod : 0,
                CPUQuota = spec.CpuQuota > 0 ? (long)(spec.CpuQuota * CfsPeriod) : 0,
                CpusetCpus = spec.Cpuset,
                CpusetMems = spec.CpusetMems,
                NetworkMode = spec.Networks.Keys.FirstOrDefault() ?? "none",
                RestartPolicy = new RestartPolicy { Name = RestartPolicyFor(spec.Restart) },
            },
            // Docker attaches one network at create; the others are connected before start.
            NetworkingConfig = spec.Networks.Count == 0 ? null : new NetworkingConfig
            {
                EndpointsConfig = new Dictionary<string, EndpointSettings>
                {
                    [spec.Networks.Keys.First()] = endpoints[spec.Networks.Keys.First()],
                },
            },
        }, ct);
        try
        {
            foreach (var (network, settings) in endpoints.Skip(1))
                await _client.Networks.ConnectNetworkAsync(
                    network, new NetworkConnectParameters { Container = created.ID, EndpointConfig = settings }, ct);
            if (spec.Files.Count > 0) await PutFilesAsync(created.ID, spec.Files, ct);
            return created.ID;
        }
        catch
        {
            await RemoveAsync(created.ID, TimeSpan.Zero, CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// Writes files into a container (running or not) through the archive API: one tar extracted at "/",
    /// parents made as needed. Nothing is written to the engine's log or to disk outside the container.
    /// </summary>
    public async Task PutFilesAsync(string id, IReadOnlyList<ContainerFile> files, CancellationToken ct = default)
    {
        using var archive = new MemoryStream();
        using (var tar = new System.Formats.Tar.TarWriter(archive, System.Formats.Tar.TarEntryFormat.Pax, leaveOpen: true))
            foreach (var f in files)
            {
                var entry = new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, f.Path.TrimStart('/'))
                {
                    Mode = (UnixFileMode)f.Mode, Uid = f.Uid, Gid = f.Gid, ModificationTime = DateTimeOffset.UtcNow,
                    DataStream = new MemoryStream(f.Content, writable: false),
                };
                tar.WriteEntry(entry);
            }
        archive.Position = 0;
        await _client.Containers.ExtractArchiveToContainerAsync(
            id, new ContainerPathStatParameters { Path = "/", AllowOverwriteDirWithFile = false }, archive, ct);
    }

    /// <summary>
    /// Why a fixed IPv6 address cannot be had on a network with these subnets (null when it can): said before the
    /// engine is asked, naming the address, the network and its IPv6 subnets.
    /// </summary>
    public static string? IPv6Problem(string network, string address, IEnumerable<string?> subnets)
    {
        if (!System.Net.IPAddress.TryParse(address, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            return $"network {network}: \"{address}\" is not an IPv6 address";
        var v6 = subnets.Select(s => System.Net.IPNetwork.TryParse(s, out var n) ? n : (System.Net.IPNetwork?)null)
            .OfType<System.Net.IPNetwork>()
            .Where(n => n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6).ToList();
        if (v6.Count == 0) return $"network {network} has no IPv6 subnet (create it with --ipv6 --subnet): no place for {address}";
        return v6.Any(n => n.Contains(ip)) ? null
            : $"fixed IPv6 address {address} is outside network {network}'s IPv6 subnet(s) {string.Join(", ", v6)}";
    }

    public async Task<ContainerState?> InspectAsync(string id, CancellationToken ct = default)
    {
        try
        {
            var c = await _client.Containers.InspectContainerAsync(id, ct);
            var networks = c.NetworkSettings?.Networks ?? new Dictionary<string, EndpointSettings>();
            var addresses = networks.Where(n => !string.IsNullOrEmpty(n.Value.IPAddress)).ToDictionary(n => n.Key, n => n.Value.IPAddress);
            return new ContainerState(c.ID, c.Name.TrimStart('/'), c.State.Running, addresses, c.HostConfig.Memory,
                c.HostConfig.CpusetCpus ?? "", c.HostConfig.CPUQuota, c.Config.Labels?.ToDictionary() ?? [])
            {
                Pid = c.State.Running ? (int)c.State.Pid : 0,
                Addresses6 = networks.Where(n => !string.IsNullOrEmpty(n.Value.GlobalIPv6Address))
                    .ToDictionary(n => n.Key, n => n.Value.GlobalIPv6Address),
                StartedAt = DateTimeOffset.TryParse(
                    c.State.StartedAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var started)
                    ? started
                    : default,
            };
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Stops (SIGTERM, then SIGKILL after <paramref name="stopTimeout"/>) and removes; true if it existed.</summary>
    public async Task<bool> RemoveAsync(string id, TimeSpan stopTimeout, CancellationToken ct = default)
    {
        try
        {
            if (stopTimeout > TimeSpan.Zero)
                await _client.Containers.StopContainerAsync(
                    id, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)stopTimeout.TotalSeconds }, ct);
            await _client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true }, ct);
            return true;
        }
        catch (DockerContainerNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Every container EdgeEru created on this engine (by label), running or not.</summary>
    public async Task<IReadOnlyList<ContainerState>> ListEdgeEruAsync(CancellationToken ct = default)
    {
        var list = await _client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [AppLabel] = true } },
        }, ct);
        var states = new List<ContainerState>();
        foreach (var c in list)
            if (await InspectAsync(c.ID, ct) is { } s) states.Add(s);
        return states;
    }

    /// <summary>
    /// Pulls <paramref name="image"/> unless the engine has it already. <paramref name="auth"/> is the
    /// registry's "user:password" (or an identity token, without ':') when it needs one. A failure throws
    /// <see cref="ImageTransferException"/> naming the registry, the user and the fix.
    /// </summary>
    public async Task EnsureImageAsync(string image, string? auth, CancellationToken ct = default)
    {
        if (await ImageExistsAsync(image, ct)) return;
        await PullAsync(image, auth, null, ct);
    }

    /// <summary>Whether the engine has <paramref name="image"/> (a name:tag, an id or a digest reference).</summary>
    public async Task<bool> ImageExistsAsync(string image, CancellationToken ct = default)
    {
        try
        {
            await _client.Images.InspectImageAsync(image, ct);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Pulls <paramref name="image"/> (again, even when present), reporting progress lines to <paramref name="log"/>.
    /// A failed pull registers no image or tag (dockerd only does so once every layer is in; layers of a broken
    /// pull are released), so there is nothing to clean up here.
    /// </summary>
    public async Task PullAsync(string image, string? auth, IProgress<string>? log, CancellationToken ct = default)
    {
        var (name, tag) = SplitImage(image);
        string? error = null;
        try
        {
            await _client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = name, Tag = tag }, Credentials(image, auth),
                new SyncProgress<JSONMessage>(m => error ??= Observe(m, log)), ct);
        }
        catch (DockerApiException ex)
        {
            // dockerd answers with an HTTP error when the pull fails before it streamed anything (auth, TLS, no such tag).
            throw ImageTransferErrors.Explain("pull", image, auth, ImageTransferErrors.BodyMessage(ex.ResponseBody),
                ex.StatusCode == System.Net.HttpStatusCode.NotFound, ex);
        }
        // Docker.DotNet ends the stream quietly on cancellation: the pull did not finish.
        ct.ThrowIfCancellationRequested();
        if (error is not null) throw ImageTransferErrors.Explain("pull", image, auth, error, false, null);
    }

    /// <summary>
    /// Pushes <paramref name="image"/> ("registry/repo:tag"; the tag is pushed, "latest" when none) with
    /// <paramref name="auth"/> as for pulls; progress lines go to <paramref name="log"/>.
    /// </summary>
    public async Task PushAsync(string image, string? auth, IProgress<string>? log, CancellationToken ct = default)
    {
        if (image.Contains('@', StringComparison.Ordinal))
            throw new ArgumentException($"push {image}: a digest reference cannot be pushed, name a tag", nameof(image));
        var (name, tag) = SplitImage(image);
        string? error = null;
        try
        {
            await _client.Images.PushImageAsync(name, new ImagePushParameters { Tag = tag }, Credentials(image, auth),
                new SyncProgress<JSONMessage>(m => error ??= Observe(m, log)), ct);
        }
        catch (DockerApiException ex)
        {
            throw ImageTransferErrors.Explain("push", image, auth, ImageTransferErrors.BodyMessage(ex.ResponseBody), false, ex);
        }
        ct.ThrowIfCancellationRequested();
        if (error is not null) throw ImageTransferErrors.Explain("push", image, auth, error, false, null);
    }

    /// <summary>Gives the image <paramref name="source"/> the further name <paramref name="target"/> (docker tag).</summary>
    public async Task TagAsync(string source, string target, CancellationToken ct = default)
    {
        var (name, tag) = SplitImage(target);
        await _client.Images.TagImageAsync(source, new ImageTagParameters { RepositoryName = name, Tag = tag, Force = true }, ct);
    }

    /// <summary>Removes the name <paramref name="image"/> (and the image when no other name keeps it); false if there was none.</summary>
    public async Task<bool> RemoveImageAsync(string image, CancellationToken ct = default)
    {
        try
        {
            await _client.Images.DeleteImageAsync(image, new ImageDeleteParameters(), ct);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
    }

    /// <summary>X-Registry-Auth for <paramref name="image"/>'s registry: "user:password", or an identity token.</summary>
    private static AuthConfig? Credentials(string image, string? auth)
    {
        if (string.IsNullOrEmpty(auth)) return null;
        var server = ImageReference.Parse(image).Registry;
        var colon = auth.IndexOf(':', StringComparison.Ordinal);
        return colon < 0
            ? new AuthConfig { IdentityToken = auth, ServerAddress = server }
            : new AuthConfig { Username = auth[..colon], Password = auth[(colon + 1)..], ServerAddress = server };
    }

    /// <summary>Passes a progress message on as a line; returns its error text, if it is one.</summary>
    private static string? Observe(JSONMessage m, IProgress<string>? log)
    {
        var error = m.Error?.Message is { Length: > 0 } e ? e : m.ErrorMessage is { Length: > 0 } em ? em : null;
        if (error is not null) return error;
        if (log is null || string.IsNullOrEmpty(m.Status)) return null;
        var line = string.IsNullOrEmpty(m.ID) ? m.Status : $"{m.Status} {m.ID}";
        if (m.Progress is { Total: > 0 } p) line += $": {Bytes(p.Current)} / {Bytes(p.Total)}";
        log.Report(line);
        return null;
    }

    private static string Bytes(long n) => n switch
    {
        < 1000 => $"{n} B",
        < 1_000_000 => $"{n / 1e3:0.#} kB",
        < 1_000_000_000 => $"{n / 1e6:0.#} MB",
        _ => $"{n / 1e9:0.##} GB",
    };

    /// <summary>Splits "registry:5000/repo/name:tag" into name and tag (a colon before the last slash is a port).</summary>
    public static (string Name, string Tag) SplitImage(string image)
    {
        if (image.Contains('@', StringComparison.Ordinal)) return (image, "");
        var colon = image.LastIndexOf(':');
        return colon > image.LastIndexOf('/') ? (image[..colon], image[(colon + 1)..]) : (image, "latest");
    }

    /// <summary>Runs <paramref name="command"/> inside a running container and waits for it (hooks).</summary>
    public async Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        var exec = await _client.Exec.ExecCreateContainerAsync(id, new ContainerExecCreateParameters
        {
            Cmd = [.. command], AttachStdout = true, AttachStderr = true,
        }, cts.Token);
        try
        {
            using var stream = await _client.Exec.StartAndAttachContainerExecAsync(exec.ID, tty: false, cts.Token);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(cts.Token);
            var inspect = await _client.Exec.InspectContainerExecAsync(exec.ID, cts.Token);
            return new ExecResult(inspect.ExitCode, (stdout + stderr).Trim());
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"`{string.Join(' ', command)}` did not finish within {timeout.TotalSeconds:0} s");
        }
    }

    /// <summary>
    /// Changes a container's limits in place (docker update): memory limit (swap capped at it; 0 leaves it),
    /// a CFS quota in cores (0: none) and the cpuset (null: every CPU of the engine, i.e. unbound).
    /// </summary>
    public async Task UpdateResourcesAsync(
        string id, long memoryLimit, double cpuQuota, string? cpuset, string? cpusetMems, CancellationToken ct = default)
    {
        if (cpuset is null)
        {
            var (cpus, _, _) = await InfoAsync(ct);
            cpuset = cpus <= 1 ? "0" : $"0-{cpus - 1}";
        }
        await _client.Containers.UpdateContainerAsync(id, new ContainerUpdateParameters
        {
            Memory = memoryLimit,
            MemorySwap = memoryLimit > 0 ? memoryLimit : 0,
            CPUPeriod = CfsPeriod,
            CPUQuota = cpuQuota > 0 ? (long)(cpuQuota * CfsPeriod) : -1, // 0 would mean "unchanged" to Docker
            CpusetCpus = cpuset,
            CpusetMems = cpusetMems,
        }, ct);
    }

    /// <summary>Detaches a container from a network (its address is free for another container).</summary>
    public Task DisconnectAsync(string id, string network, CancellationToken ct = default) =>
        _client.Networks.DisconnectNetworkAsync(network, new NetworkDisconnectParameters { Container = id, Force = true }, ct);

    /// <summary>
    /// Attaches a container to a network, with a fixed IPv4 address unless <paramref name="address"/> is empty and a fixed
    /// IPv6 one unless <paramref name="address6"/> is.
    /// </summary>
    public Task ConnectAsync(string id, string network, string address, string address6 = "", CancellationToken ct = default) =>
        _client.Networks.ConnectNetworkAsync(network, new NetworkConnectParameters
        {
            Container = id,
            EndpointConfig = new EndpointSettings
            {
                IPAMConfig = address.Length > 0 || address6.Length > 0
                    ? new EndpointIPAMConfig { IPv4Address = address, IPv6Address = address6 }
                    : null,
            },
        }, ct);

    public async Task StartAsync(string id, CancellationToken ct = default) =>
        await _client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);

    public async Task StopAsync(string id, TimeSpan stopTimeout, CancellationToken ct = default) =>
        await _client.Containers.StopContainerAsync(
            id, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)stopTimeout.TotalSeconds }, ct);

    public async Task RestartAsync(string id, TimeSpan stopTimeout, CancellationToken ct = default) =>
        await _client.Containers.RestartContainerAsync(
            id, new ContainerRestartParameters { WaitBeforeKillSeconds = (uint)stopTimeout.TotalSeconds }, ct);

    private static RestartPolicyKind RestartPolicyFor(string restart) => restart switch
    {
        "" or "no" => RestartPolicyKind.No,
        "always" => RestartPolicyKind.Always,
        "on-failure" => RestartPolicyKind.OnFailure,
        "unless-stopped" => RestartPolicyKind.UnlessStopped,
        _ => throw new ArgumentException($"restart \"{restart}\" must be no, always, on-failure or unless-stopped", nameof(restart)),
    };

    /// <summary>
    /// Why talking to the engine at <paramref name="endpoint"/> failed, in words: the chain of causes (an
    /// HTTP client error alone says little), and for a TLS endpoint what to check when the handshake failed.
    /// </summary>
    public static string Explain(Exception ex, DockerEndpoint endpoint)
    {
        var causes = new List<string>();
        var tlsFailed = false;
        for (var e = ex; e is not null; e = e.InnerException)
        {
            var message = e.Message.Replace(", see inner exception", "", StringComparison.Ordinal).Trim().TrimEnd('.');
            if (!causes.Contains(message)) causes.Add(message);
            tlsFailed |= e is System.Security.Authentication.AuthenticationException
                || (endpoint.TlsCertPath is not null && e is IOException);
        }
        var text = string.Join(": ", causes);
        return tlsFailed
            ? $"{text} (TLS handshake failed: the engine must trust the CA that signed " +
                $"{endpoint.TlsCertPath ?? "the client certificate"}, and its own certificate must chain to " +
                $"{endpoint.TlsCaPath ?? "a trusted CA"} and name the host)"
            : text;
    }

    /// <summary>Throws when the engine does not answer (the agent's liveness probe of Docker).</summary>
    public Task PingAsync(CancellationToken ct = default) => _client.System.PingAsync(ct);

    /// <summary>
    /// Follows the engine's events for EdgeEru containers until cancelled or the connection breaks (then it
    /// throws, or returns when the engine closed the stream): the caller reconnects and reconciles.
    /// </summary>
    public Task FollowEventsAsync(Action<ContainerEvent> onEvent, CancellationToken ct) =>
        _client.System.MonitorEventsAsync(new ContainerEventsParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["type"] = new Dictionary<string, bool> { ["container"] = true },
                ["label"] = new Dictionary<string, bool> { [AppLabel] = true },
            },
        }, new SyncProgress<Message>(m =>
        {
            var id = m.Actor?.ID ?? m.ID;
            if (!string.IsNullOrEmpty(id) && !string.IsNullOrEmpty(m.Action))
                onEvent(new ContainerEvent(id, m.Action, m.Actor?.Attributes?.ToDictionary() ?? []));
        }), ct);

    /// <summary>
    /// A container's stdout and stderr from <paramref name="sinceUnixNanos"/> on (Docker's own clock), following new
    /// output until the container stops (the stream then ends). Docker's multiplexed framing tells the two streams
    /// apart; each line starts with Docker's timestamp (RFC 3339, nanoseconds) and a space.
    /// </summary>
    public Task<MultiplexedStream> FollowLogsAsync(string id, long sinceUnixNanos, CancellationToken ct) =>
        _client.Containers.GetContainerLogsAsync(id, tty: false, new ContainerLogsParameters
        {
            ShowStdout = true, ShowStderr = true, Follow = true, Timestamps = true,
            Since = $"{sinceUnixNanos / 1_000_000_000}.{sinceUnixNanos % 1_000_000_000:D9}",
        }, ct);

    /// <summary>One <c>docker stats</c> sample of a running container.</summary>
    public async Task<ContainerStatsSample?> StatsAsync(string id, CancellationToken ct = default)
    {
        ContainerStatsResponse? sample = null;
        try
        {
            await _client.Containers.GetContainerStatsAsync(id, new ContainerStatsParameters { Stream = false, OneShot = true },
                new SyncProgress<ContainerStatsResponse>(r => sample ??= r), ct);
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
        if (sample is null || sample.Read == default) return null; // not running (any more): Docker answers with zeros
        var blk = sample.BlkioStats?.IoServiceBytesRecursive ?? [];
        return new ContainerStatsSample(
            (long)(sample.MemoryStats?.Usage ?? 0),
            (sample.CPUStats?.CPUUsage?.TotalUsage ?? 0) / 1e9,
            (long)(sample.Networks?.Values.Sum(n => (double)n.RxBytes) ?? 0),
            (long)(sample.Networks?.Values.Sum(n => (double)n.TxBytes) ?? 0),
            (long)blk.Where(b => string.Equals(b.Op, "read", StringComparison.OrdinalIgnoreCase)).Sum(b => (double)b.Value),
            (long)blk.Where(b => string.Equals(b.Op, "write", StringComparison.OrdinalIgnoreCase)).Sum(b => (double)b.Value));
    }

    /// <summary>
    /// IProgress that calls back on the reporting thread (Progress&lt;T&gt; would post to the thread pool and reorder events).
    /// </summary>
    private sealed class SyncProgress<T>(Action<T> onValue) : IProgress<T>
    {
        public void Report(T value) => onValue(value);
    }

    /// <summary>The cpuset string of a CPU plan ("2,3").</summary>
    public static string Cpuset(IEnumerable<int> cores) =>
        string.Join(',', cores.Order().Select(c => c.ToString(CultureInfo.InvariantCulture)));

    public void Dispose() => _client.Dispose();
}
