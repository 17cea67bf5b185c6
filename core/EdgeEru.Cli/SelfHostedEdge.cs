using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Pipelines;
using System.Security.Cryptography;
using EdgeEru.Core.Api;
using EdgeEru.Core.Deploy;
using EdgeEru.Dev;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary>
/// <c>eru dev --self-hosted</c>: the edge as EdgeEru workloads, the way ERU ran its own ELB. Through Core's API
/// only: a private image registry on the rig (its credentials stored in Core), images built by Core on a node
/// from this checkout's own binaries FROM a .NET base image and pushed there, the LB's admin token as a secret,
/// then one eru-dns and one eru-lb per host with fixed addresses. etcd and Core stay outside: they are what
/// schedules and records the edge, so the edge cannot be what brings them up.
/// </summary>
internal sealed class SelfHostedEdge(
    DockerRig rig, string etcdUrl, string prefix, string stateDir, string coreUrl, string coreToken, ILogger log)
{
    /// <summary>The app the edge's workloads belong to: <c>dns.edge</c> and <c>lb.edge</c>.</summary>
    public const string App = "edge";

    /// <summary>Where the LB reads its settings (the admin token): .NET loads appsettings.Production.json beside the binary.</summary>
    private const string LbSettings = "/opt/eru-lb/appsettings.Production.json";

    public sealed record Replica(string Entrypoint, string Node, string Address, string Name);

    /// <summary>The spec eru dev deployed the edge from (<c>eru replace .dev/edge.yaml ...</c> rolls it).</summary>
    public string SpecPath => Path.Combine(stateDir, "edge.yaml");

    public async Task<IReadOnlyList<Replica>> StartAsync(StartedStack started, string lbToken, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        using var channel = GrpcChannel.ForAddress(coreUrl);
        var core = new V1.Core.CoreClient(channel.Intercept(m =>
        {
            m.Add("authorization", "Bearer " + coreToken);
            return m;
        }));

        // A registry on the rig's bridge, trusted by every host's engine; Core pulls and pushes with its credentials.
        var registry = started.Push("image registry", await ImageRegistry.StartAsync(rig.BridgeAddress, "eru-dev", ct: ct));
        await core.SetRegistryAuthAsync(
            new V1.SetRegistryAuthRequest { Host = registry.Host, User = registry.User, Password = registry.Password },
            cancellationToken: ct);
        foreach (var h in rig.Hosts) await RuntimeImage.ImportAsync(h, ct);
        log.LogInformation("base image {Image} on {Hosts} hosts, registry at {Registry}",
            RuntimeImage.Name, rig.Hosts.Count, registry.Host);

        var dns = await BuildAsync(core, "dns", "eru-dns", registry.Host, ct);
        var lb = await BuildAsync(core, "lb", "eru-lb", registry.Host, ct);
        await core.SetSecretAsync(new V1.SetSecretRequest
        {
            Name = "edge-lb-settings",
            Content = ByteString.CopyFromUtf8(
                new System.Text.Json.Nodes.JsonObject { ["Lb"] = new System.Text.Json.Nodes.JsonObject { ["AdminToken"] = lbToken } }
                .ToJsonString()),
        }, cancellationToken: ct);
        await File.WriteAllTextAsync(SpecPath, Spec(dns, lb), ct);

        var spec = AppSpec.Parse(await File.ReadAllTextAsync(SpecPath, ct));
        var replicas = new List<Replica>();
        foreach (var h in rig.Hosts.Take(2))
            foreach (var (entrypoint, slot) in new[] { ("dns", 1000), ("lb", 1001) })
            {
                var address = h.ContainerAddress(slot);
                var request = SpecMapping.ToRequest(spec.ToDeploySpec(entrypoint, new DeploySpec
                {
                    App = App, Entrypoint = entrypoint, Image = "", Pod = "dev", Count = 1, Nodes = [$"h{h.Index}"],
                    Networks = new Dictionary<string, string> { [DockerRig.Network] = address },
                    MemoryRequest = 128L << 20, MemoryLimit = 256L << 20,
                }));
                using var call = core.Deploy(request, cancellationToken: ct);
                await foreach (var e in call.ResponseStream.ReadAllAsync(ct))
                {
                    if (e.Instance is not { } i) continue;
                    if (i.Error.Length > 0) throw new DevCommand.ServiceStartException($"edge {entrypoint} on h{h.Index}: {i.Error}");
                    replicas.Add(new Replica(entrypoint, i.Node, address, i.Name));
                    log.LogInformation("edge {Entrypoint} replica {Name} on {Node} at {Address}", entrypoint, i.Name, i.Node, address);
                }
            }
        await WaitLiveAsync(core, replicas, ct);
        log.LogInformation("self-hosted edge built, pushed, deployed and live in {Seconds:0.0} s", watch.Elapsed.TotalSeconds);
        return replicas;
    }

    /// <summary>The edge's app spec: what a user rolls with <c>eru replace .dev/edge.yaml --entrypoint lb --keep-ip ...</c>.</summary>
    private string Spec(string dnsImage, string lbImage) => $$"""
        # The self-hosted edge of ./eru dev: eru-dns and eru-lb as EdgeEru workloads (images built from this checkout).
        appname: {{App}}
        entrypoints:
          dns:
            image: {{dnsImage}}
            env: ["ERU_Registry__Endpoints={{etcdUrl}}", ERU_Registry__Prefix={{prefix}}, ERU_Dns__Listen=0.0.0.0, ERU_Dns__Port=53,
                  "ERU_Http__Urls=http://0.0.0.0:9153", ERU_Logging__Format=simple]
            ports: ["dns:53/udp", "metrics:9153/tcp"]
            healthcheck: {http_port: metrics, url: /healthz, interval_ms: 500, timeout_ms: 1000}
            restart: always
          lb:
            image: {{lbImage}}
            env: ["ERU_Registry__Endpoints={{etcdUrl}}", ERU_Registry__Prefix={{prefix}}, "ERU_Lb__Urls=http://0.0.0.0:80",
                  "ERU_Lb__AdminUrls=http://0.0.0.0:9181", "ERU_Http__Urls=http://0.0.0.0:9180", ERU_Logging__Format=simple]
            ports: ["http:80/tcp", "admin:9181/tcp", "ops:9180/tcp"]
            secrets: [{name: edge-lb-settings, target: {{LbSettings}}, mode: "0400"}]
            healthcheck: {http_port: ops, url: /healthz, interval_ms: 500, timeout_ms: 1000}
            restart: always
        """;

    /// <summary>
    /// Builds <paramref name="name"/>'s image on the first host through Core (FROM the .NET base image, the binaries
    /// ./eru built next to this CLI copied in) and pushes it; the tag is a digest of those binaries.
    /// </summary>
    private async Task<string> BuildAsync(V1.Core.CoreClient core, string folder, string name, string registryHost, CancellationToken ct)
    {
        var binaries = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", folder));
        if (!File.Exists(Path.Combine(binaries, name + ".dll")))
            throw new DevCommand.ServiceStartException($"{binaries}/{name}.dll is missing; ./eru builds it");
        var tag = $"{registryHost}/edgeeru/{name}:{Digest(binaries)}";
        var dockerfile = $"""
            FROM {RuntimeImage.Name}
            COPY app/ /opt/{name}/
            ENTRYPOINT ["dotnet", "/opt/{name}/{name}.dll"]
            """;
        var watch = Stopwatch.StartNew();
        using var call = core.Build(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new V1.BuildRequest
        {
            Options = new V1.BuildOptions { Pod = "dev", Node = "h1", Tags = { tag }, Push = true, Network = "none" },
        }, ct);
        var pipe = new Pipe();
        var pack = Task.Run(async () =>
        {
            try
            {
                await using (var tar = new TarWriter(pipe.Writer.AsStream(leaveOpen: true), TarEntryFormat.Pax, leaveOpen: false))
                {
                    await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "Dockerfile")
                    {
                        DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(dockerfile)), Mode = (UnixFileMode)0x1A4,
                    }, ct);
                    foreach (var file in Directory.EnumerateFiles(binaries, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                        await tar.WriteEntryAsync(file, "app/" + Path.GetRelativePath(binaries, file), ct);
                }
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
            }
        }, ct);
        var buffer = new byte[64 * 1024];
        await using (var context = pipe.Reader.AsStream())
        {
            int n;
            while ((n = await context.ReadAsync(buffer, ct)) > 0)
                await call.RequestStream.WriteAsync(new V1.BuildRequest { Context = ByteString.CopyFrom(buffer, 0, n) }, ct);
        }
        await pack;
        await call.RequestStream.CompleteAsync();
        V1.BuildResult? result = null;
        await foreach (var e in call.ResponseStream.ReadAllAsync(ct))
            if (e.Result is not null) result = e.Result;
        if (result is null) throw new DevCommand.ServiceStartException($"building {tag}: eru-core gave no result");
        log.LogInformation("built and pushed {Tag} on {Node} in {Seconds:0.0} s", tag, result.Node, watch.Elapsed.TotalSeconds);
        return tag;
    }

    /// <summary>A short digest of a folder's files (names and contents): the same binaries give the same tag.</summary>
    private static string Digest(string folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(folder, file)));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..12];
    }

    /// <summary>Waits until Core lists every replica live (its agent reports it running and healthy).</summary>
    private static async Task WaitLiveAsync(V1.Core.CoreClient core, List<Replica> replicas, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            var listed = (await core.ListWorkloadsAsync(new V1.ListWorkloadsRequest { App = App }, cancellationToken: ct)).Workloads;
            var notLive = replicas.Where(r => !listed.Any(w => w.Name == r.Name && w.Live)).ToList();
            if (notLive.Count == 0) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("edge replicas not live within 90 s: " + string.Join("; ", notLive.Select(r =>
                    $"{r.Name}: {listed.FirstOrDefault(w => w.Name == r.Name)?.Reason ?? "not listed"}")));
            await Task.Delay(300, ct);
        }
    }
}
