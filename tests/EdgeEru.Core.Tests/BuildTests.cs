using System.Diagnostics;
using System.Formats.Tar;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Agent;
using EdgeEru.Docker;
using EdgeEru.Core.Server;
using EdgeEru.Dev;
using EdgeEru.Registry;
using EdgeEru.Registry.Etcd;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;
using EdgeEru.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using Xunit.Abstractions;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Two simulated hosts with agents, a real etcd, the real private registry (TLS from a private CA, htpasswd) whose
/// credentials are stored in Core (sealed with its key), and eru-core in-process with pod dev = h1, h2. The registry
/// holds the rig's busybox as {registry}/edgeeru/base:1, which no host has under that name.
/// </summary>
public sealed class BuildRigFixture : IAsyncLifetime, IDisposable
{
    public const string Token = "build-token";
    private readonly CancellationTokenSource _stopAgents = new();
    private readonly List<(NodeAgent Agent, Task Run)> _agents = [];
    private string _keyFile = "";
    private EtcdConnection? _conn;
    private RegistryWatcher? _watcher;
    private GrpcChannel? _channel;

    public EtcdServer Etcd { get; private set; } = null!;
    public DockerRig Rig { get; private set; } = null!;
    public ImageRegistry Registry { get; private set; } = null!;
    public WebApplication Core { get; private set; } = null!;
    public string Url { get; private set; } = "";
    public V1.Core.CoreClient Api { get; private set; } = null!;

    /// <summary>Where Core's log goes: the running test's output.</summary>
    public ITestOutputHelper? Output { get; set; }

    /// <summary>The rig's busybox in the registry, on no host under that name.</summary>
    public string Base => $"{Registry.Host}/edgeeru/base:1";

    public DockerEngine Engine(int host) => new(new DockerEndpoint { Address = Rig.Hosts[host - 1].Endpoint });

    public async Task InitializeAsync()
    {
        Etcd = await EtcdServer.StartAsync();
        Rig = await DockerRig.StartAsync(hosts: 2);
        Registry = await ImageRegistry.StartAsync(Rig.BridgeAddress, "builder", "pw-" + Guid.NewGuid().ToString("N")[..10]);
        _keyFile = Path.Combine(Path.GetTempPath(), "eru-build-key-" + Guid.NewGuid().ToString("N")[..8]);
        await File.WriteAllBytesAsync(_keyFile, RandomNumberGenerator.GetBytes(32));
        var prefix = EtcdFixture.NewPrefix();
        Url = $"http://127.0.0.1:{Ports.FreeTcp()}";
        Core = CoreHost.Create(["--Registry:Endpoints", Etcd.ClientUrl, "--Registry:Prefix", prefix, "--Core:Urls", Url,
            "--Core:Token", Token, "--Http:Urls", $"http://127.0.0.1:{Ports.FreeTcp()}", "--Core:SecretsKeyFile", _keyFile],
            l => l.AddProvider(new ForwardingLoggerProvider(this)).SetMinimumLevel(LogLevel.Information));
        await Core.StartAsync();
        _channel = GrpcChannel.ForAddress(Url);
        Api = new V1.Core.CoreClient(_channel.Intercept(m =>
        {
            m.Add("authorization", "Bearer " + Token);
            return m;
        }));
        await Api.AddPodAsync(new V1.AddPodRequest { Name = "dev" });
        foreach (var h in Rig.Hosts)
        {
            await Api.AddNodeAsync(new V1.AddNodeRequest
            {
                Node = new V1.Node
                {
                    Name = $"h{h.Index}", Pod = "dev", Endpoint = h.Endpoint, Address = h.Address, Networks = { DockerRig.Network },
                },
            });
        }
        await Api.SetRegistryAuthAsync(new V1.SetRegistryAuthRequest
        {
            Host = Registry.Host, User = Registry.User, Password = Registry.Password,
        });
        using (var h1 = Engine(1))
        {
            await h1.TagAsync(DockerRig.Image, Base);
            await h1.PushAsync(Base, Registry.Auth, null);
            await h1.RemoveImageAsync(Base);
        }

        _conn = new EtcdConnection(new RegistryOptions
        {
            Endpoints = Etcd.ClientUrl, Prefix = prefix, RequestTimeout = TimeSpan.FromSeconds(15),
        });
        _watcher = new RegistryWatcher(_conn, NullLogger<RegistryWatcher>.Instance);
        _watcher.Start();
        var store = new RegistryStore(_conn);
        foreach (var h in Rig.Hosts)
        {
            var agent = new NodeAgent(store, () => _watcher.Current, new DockerEngine(new DockerEndpoint { Address = h.Endpoint }),
                new AgentOptions { Node = $"h{h.Index}", LeaseTtl = TimeSpan.FromSeconds(3), Interval = TimeSpan.FromMilliseconds(300) },
                NullLogger<NodeAgent>.Instance);
            _agents.Add((agent, Task.Run(() => agent.RunAsync(_stopAgents.Token))));
        }
        await Eventually.True(async () => (await Api.ListNodesAsync(new V1.ListNodesRequest())).Nodes.All(n => n.Alive),
            TimeSpan.FromSeconds(15), "h1 and h2 alive");
    }

    public async Task DisposeAsync()
    {
        await _stopAgents.CancelAsync();
        foreach (var (agent, run) in _agents)
        {
            await run;
            await agent.DisposeAsync();
        }
        if (_watcher is not null) await _watcher.DisposeAsync();
        _conn?.Dispose();
        _channel?.Dispose();
        if (Core is not null)
        {
            await Core.StopAsync();
            await Core.DisposeAsync();
        }
        if (Registry is not null) await Registry.DisposeAsync();
        if (Rig is not null) await Rig.DisposeAsync();
        if (Etcd is not null) await Etcd.DisposeAsync();
        File.Delete(_keyFile);
    }

    public void Dispose()
    {
        _stopAgents.Dispose();
        _conn?.Dispose();
    }

    /// <summary>Core's log lines into the running test's output (none between tests).</summary>
    private sealed class ForwardingLoggerProvider(BuildRigFixture f) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(f, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(BuildRigFixture f, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
                Func<TState, Exception?, string> formatter)
            {
                try
                {
                    f.Output?.WriteLine($"[{logLevel}] {category.Split('.')[^1]}: {formatter(state, exception)}");
                }
                catch (InvalidOperationException)
                {
                    // The test ended meanwhile.
                }
            }
        }
    }
}

/// <summary>
/// Image builds through Core (<c>Build</c>, <c>eru build</c>): built on a real dockerd with the classic builder, pushed
/// to the real registry with the credentials Core keeps, deployed from there onto another host; a build that fails
/// half-way names its step and exit code and leaves nothing; bad requests are refused naming the field.
/// </summary>
[Collection(AppsRigCollection.Name)]
public sealed class BuildTests : IClassFixture<BuildRigFixture>, IDisposable
{
    private const long MiB = 1L << 20;
    private readonly BuildRigFixture f;
    private readonly ITestOutputHelper output;

    public BuildTests(BuildRigFixture f, ITestOutputHelper output)
    {
        (this.f, this.output) = (f, output);
        f.Output = output;
    }

    public void Dispose() => f.Output = null;

    [Fact]
    public async Task An_image_built_on_h1_and_pushed_is_deployed_on_h2_from_the_registry_and_serves_the_copied_file()
    {
        var clock = Stopwatch.StartNew();
        var tag = $"{f.Registry.Host}/edgeeru/web:1";
        var options = new V1.BuildOptions { Node = "h1", Tags = { tag }, BuildArgs = { ["GREETING"] = "eru" }, Push = true };
        var before = await ContainersAsync(1);
        var events = await BuildAsync(options, new Dictionary<string, string>
        {
            ["Dockerfile"] = $"""
                FROM {DockerRig.Image}
                ARG GREETING=nobody
                COPY www/ /www/
                RUN echo "built by $GREETING" > /www/built.txt
                CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
                """,
            ["www/index.html"] = "hello from the context\n",
        });
        output.WriteLine($"built and pushed in {clock.Elapsed.TotalSeconds:F1} s");
        var logs = Logs(events);
        Assert.Contains($"Step 1/6 : FROM {DockerRig.Image}", logs);
        Assert.Contains("Step 4/6 : RUN echo \"built by $GREETING\" > /www/built.txt", logs);
        Assert.Contains($"Successfully tagged {tag}", logs);
        var result = events[^1].Result;
        Assert.NotNull(result);
        // The label is the builder's last step (as with docker build --label), so the counts include it.
        Assert.Contains($"Step 6/6 : LABEL {Deploy.BuildSpec.BuildLabel}={result.BuildId}", logs);
        var pushed = Assert.Single(events, e => e.EventCase == V1.BuildEvent.EventOneofCase.Pushed).Pushed;
        Assert.Equal(tag, pushed.Tag);
        Assert.Matches("^sha256:[0-9a-f]{64}$", pushed.Digest);
        Assert.Equal("h1", result.Node);
        Assert.Equal([tag], result.Tags);
        Assert.Matches("^sha256:[0-9a-f]{64}$", result.ImageId);
        Assert.Equal(before, await ContainersAsync(1)); // every step's container removed

        // The registry has the tag under the digest that was reported; the image carries its build's label.
        Assert.Equal(pushed.Digest, await ManifestDigestAsync("edgeeru/web", "1"));
        using (var h1 = f.Engine(1))
        {
            var labels = await h1.ImageLabelsAsync(tag);
            Assert.Equal(result.BuildId, labels![Deploy.BuildSpec.BuildLabel]);
        }

        // Deployed through Core on h2, which pulls it from the registry with the credentials Core keeps.
        using (var h2 = f.Engine(2)) Assert.False(await h2.ImageExistsAsync(tag));
        var address = f.Rig.Hosts[1].ContainerAddress(30);
        var deploy = new V1.DeployRequest
        {
            App = "built", Entrypoint = "web", Image = tag, Pod = "dev", Nodes = { "h2" }, Count = 1,
            Networks = { [DockerRig.Network] = address },
            Resources = new V1.Resources { MemoryRequestBytes = 32 * MiB, MemoryLimitBytes = 32 * MiB },
        };
        using var call = f.Api.Deploy(deploy);
        var instance = (await call.ResponseStream.ReadAllAsync().ToListAsync())
            .Single(e => e.EventCase == V1.DeployEvent.EventOneofCase.Instance).Instance;
        Assert.Equal("", instance.Error);
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            var served = await Eventually.Value(async () =>
            {
                try
                {
                    return await http.GetStringAsync(new Uri($"http://{address}/index.html"));
                }
                catch (HttpRequestException)
                {
                    return null; // httpd starting, or the first ARP exchange
                }
            }, TimeSpan.FromSeconds(20), "the deployed image serves its copied file");
            Assert.Equal("hello from the context\n", served);
            Assert.Equal("built by eru\n", await http.GetStringAsync(new Uri($"http://{address}/built.txt")));
        }
        finally
        {
            using var rm = f.Api.Remove(new V1.RemoveRequest { Workloads = { instance.WorkloadId } });
            await rm.ResponseStream.ReadAllAsync().ToListAsync();
        }
        output.WriteLine($"built, pushed, deployed and served in {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task A_build_that_fails_half_way_names_the_step_and_exit_code_and_leaves_no_container_tag_or_layer()
    {
        var tag = $"{f.Registry.Host}/edgeeru/broken:1";
        var (containers, images) = (await ContainersAsync(1), await ImagesAsync(1));
        var events = new List<V1.BuildEvent>();
        var options = new V1.BuildOptions { Pod = "dev", Tags = { tag } };
        var ex = await Assert.ThrowsAsync<RpcException>(() => BuildAsync(options, new Dictionary<string, string>
        {
            ["Dockerfile"] = $"""
                FROM {DockerRig.Image}
                COPY a.txt /a.txt
                RUN echo step three ran && cat /a.txt
                RUN echo about to fail; exit 3
                CMD ["sh"]
                """,
            ["a.txt"] = "content of a\n",
        }, events));
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.StartsWith("build failed at step 4/6 (RUN echo about to fail; exit 3): " +
            "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3\nlast output lines:\n", ex.Status.Detail);
        Assert.Contains("about to fail", ex.Status.Detail.Split('\n')[2..], StringComparer.Ordinal);
        var logs = Logs(events);
        Assert.Contains("building on h1", logs[0], StringComparison.Ordinal); // the pod's first alive node by name
        Assert.Contains("step three ran", logs);
        Assert.Contains("content of a", logs);

        // No container (forcerm), no tag (the builder tags at the end), and the layers of steps 2 and 3 removed again.
        Assert.Equal(containers, await ContainersAsync(1));
        Assert.Equal(images, await ImagesAsync(1));
        using (var h1 = f.Engine(1)) Assert.False(await h1.ImageExistsAsync(tag));
        using var registry = f.Registry.CreateClient();
        using var tags = await registry.GetAsync(new Uri("v2/edgeeru/broken/tags/list", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, tags.StatusCode);
    }

    [Fact]
    public async Task A_build_cancelled_by_its_caller_stops_and_leaves_no_container_tag_or_layer()
    {
        var (containers, images) = (await ContainersAsync(1), await ImagesAsync(1));
        using var cancel = new CancellationTokenSource();
        var events = new List<V1.BuildEvent>();
        var build = BuildAsync(new V1.BuildOptions { Node = "h1", Tags = { "edgeeru/cancelled:1" } }, new Dictionary<string, string>
        {
            ["Dockerfile"] = $"FROM {DockerRig.Image}\nCOPY a.txt /a.txt\nRUN echo sleeping; sleep 60\n",
            ["a.txt"] = "a\n",
        }, events, cancel.Token);
        await Eventually.True(() => Logs(events).Contains("sleeping"), TimeSpan.FromSeconds(20), "the RUN step runs");
        await Eventually.True(async () => await ContainersAsync(1) != containers, TimeSpan.FromSeconds(5), "the step's container exists");
        var clock = Stopwatch.StartNew();
        await cancel.CancelAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(() => build);
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        // dockerd stops the step when the connection to it closes; the layer of the COPY is removed again.
        await Eventually.True(async () => await ContainersAsync(1) == containers && await ImagesAsync(1) == images,
            TimeSpan.FromSeconds(15), "no container and no layer left");
        output.WriteLine($"nothing left {clock.Elapsed.TotalSeconds:F1} s after the cancel");
    }

    [Fact]
    public async Task A_base_image_the_node_lacks_is_pulled_with_Core_s_credentials_and_a_missing_one_is_explained()
    {
        var tag = $"{f.Registry.Host}/edgeeru/on-base:1";
        var events = await BuildAsync(new V1.BuildOptions { Node = "h2", Tags = { tag } }, new Dictionary<string, string>
        {
            ["Dockerfile"] = $"FROM {f.Base}\nRUN echo on the base > /on-base.txt\n",
        });
        Assert.Contains(Logs(events), l => l.StartsWith("Status: Downloaded newer image for " + f.Base, StringComparison.Ordinal));
        Assert.Equal("h2", events[^1].Result.Node);
        // Pushed without asking: Core has credentials for the tag's registry.
        Assert.Equal(tag, Assert.Single(events, e => e.EventCase == V1.BuildEvent.EventOneofCase.Pushed).Pushed.Tag);

        var missing = $"{f.Registry.Host}/edgeeru/none:1";
        var ex = await Assert.ThrowsAsync<RpcException>(() => BuildAsync(new V1.BuildOptions { Node = "h2", Tags = { "edgeeru/never:1" } },
            new Dictionary<string, string> { ["Dockerfile"] = $"FROM {missing}\nRUN true\n" }));
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.StartsWith($"build failed at step 1/3 (FROM {missing}): " +
            $"pull {missing}: the registry {f.Registry.Host} has no edgeeru/none:1 (", ex.Status.Detail);

        // Built, but the push fails (nobody listens there): said so, and the image stays on the node.
        var nowhere = $"{f.Rig.BridgeAddress}:1/edgeeru/nowhere:1";
        ex = await Assert.ThrowsAsync<RpcException>(() => BuildAsync(new V1.BuildOptions { Node = "h2", Tags = { nowhere }, Push = true },
            new Dictionary<string, string> { ["Dockerfile"] = $"FROM {f.Base}\n" }));
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.Matches($"^built sha256:[0-9a-f]{{64}} on h2 as {nowhere}, but the push failed: push {nowhere}: " +
            $"the engine cannot reach the registry {f.Rig.BridgeAddress}:1 ", ex.Status.Detail);
        using var h2 = f.Engine(2);
        Assert.True(await h2.RemoveImageAsync(nowhere));
    }

    [Fact]
    public async Task Bad_requests_are_refused_naming_the_field_and_build_nothing()
    {
        var images = await ImagesAsync(1);
        var context = new Dictionary<string, string> { ["Dockerfile"] = $"FROM {DockerRig.Image}\n" };
        async Task<RpcException> Refused(V1.BuildOptions options, StatusCode code)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(() => BuildAsync(options, context));
            Assert.Equal(code, ex.StatusCode);
            output.WriteLine($"{ex.StatusCode}: {ex.Status.Detail}");
            return ex;
        }

        const StatusCode invalid = StatusCode.InvalidArgument;
        var ex = await Refused(new V1.BuildOptions { Node = "h1", Tags = { "edgeeru/ok:1", "Edgeeru/Web:1" } }, invalid);
        Assert.Contains("tags[1] \"Edgeeru/Web:1\" is not a valid image reference", ex.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("tags[0]", ex.Status.Detail, StringComparison.Ordinal);
        ex = await Refused(new V1.BuildOptions { Node = "h1", Tags = { "web:1", "web@sha256:" + new string('0', 64) } }, invalid);
        Assert.Contains("tags[1]", ex.Status.Detail, StringComparison.Ordinal);
        ex = await Refused(new V1.BuildOptions { Node = "h9", Tags = { "edgeeru/ok:1" } }, StatusCode.InvalidArgument);
        Assert.Equal("node \"h9\" does not exist", ex.Status.Detail);
        ex = await Refused(new V1.BuildOptions { Pod = "dev", Tags = { "edgeeru/ok:1" }, Push = true }, StatusCode.InvalidArgument);
        Assert.Contains("tags[0] \"edgeeru/ok:1\" names no registry host, so it cannot be pushed", ex.Status.Detail,
            StringComparison.Ordinal);
        ex = await Refused(new V1.BuildOptions
        {
            Node = "h1", Tags = { "edgeeru/ok:1" }, Dockerfile = "../Dockerfile", BuildArgs = { ["1X"] = "" },
        }, invalid);
        Assert.Contains("dockerfile \"../Dockerfile\"", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("build_args: \"1X\"", ex.Status.Detail, StringComparison.Ordinal);
        ex = await Refused(new V1.BuildOptions { Tags = { "edgeeru/ok:1" } }, StatusCode.InvalidArgument);
        Assert.Contains("pod or node", ex.Status.Detail, StringComparison.Ordinal);
        ex = await Refused(new V1.BuildOptions { Pod = "nope", Tags = { "edgeeru/ok:1" } }, StatusCode.NotFound);
        Assert.Equal("pod nope does not exist", ex.Status.Detail);
        // The engine's own refusal before any step: the context has no such Dockerfile.
        ex = await Refused(new V1.BuildOptions { Node = "h1", Tags = { "edgeeru/ok:1" }, Dockerfile = "sub/Dockerfile" },
            StatusCode.FailedPrecondition);
        Assert.StartsWith("build failed before its first step: ", ex.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("sub/Dockerfile", ex.Status.Detail, StringComparison.Ordinal);

        // Options must come first.
        using var call = f.Api.Build();
        await call.RequestStream.WriteAsync(new V1.BuildRequest { Context = ByteString.CopyFromUtf8("not options") });
        var first = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.ReadAllAsync().ToListAsync().AsTask());
        Assert.Equal(StatusCode.InvalidArgument, first.StatusCode);
        Assert.StartsWith("options: ", first.Status.Detail, StringComparison.Ordinal);
        // Nothing new (an earlier test's layers may still be going away meanwhile: fewer is fine).
        Assert.Empty((await ImagesAsync(1)).Split('\n').Except(images.Split('\n')));
    }

    [Fact]
    public async Task Eru_build_tars_the_directory_honouring_dockerignore_streams_the_log_pushes_and_fails_with_the_step()
    {
        // RUN steps with --network host reach the root namespace over the rig's bridge (and nothing else: no internet here).
        using var listener = new TcpListener(IPAddress.Parse(f.Rig.BridgeAddress), 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var serve = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            Assert.True(await stream.ReadAsync(new byte[4096]) > 0);
            await stream.WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 27\r\n\r\nserved over the rig bridge\n"u8.ToArray());
        });
        var dir = Directory.CreateTempSubdirectory("eru-build-ctx-").FullName;
        var outside = Directory.CreateTempSubdirectory("eru-build-outside-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), $"""
                FROM {DockerRig.Image}
                COPY . /ctx/
                RUN wget -q -O /fetched.txt http://{f.Rig.BridgeAddress}:{port}/
                """);
            await File.WriteAllTextAsync(Path.Combine(dir, ".dockerignore"), "# not for the image\n*.log\nsecret/\n!secret/keep.txt\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "app.txt"), "app\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "debug.log"), "noise\n");
            Directory.CreateDirectory(Path.Combine(dir, "secret"));
            await File.WriteAllTextAsync(Path.Combine(dir, "secret", "hidden.txt"), "hidden\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "secret", "keep.txt"), "kept\n");
            await File.WriteAllTextAsync(Path.Combine(outside, "outside.txt"), "outside the context\n");
            File.CreateSymbolicLink(Path.Combine(dir, "link"), Path.Combine(outside, "outside.txt"));

            var tag = $"{f.Registry.Host}/edgeeru/cli:1";
            var clock = Stopwatch.StartNew();
            var (code, text) = await Eru("build", dir, "--tag", tag, "--node", "h1", "--network", "host");
            output.WriteLine($"eru build took {clock.Elapsed.TotalSeconds:F1} s");
            Assert.True(code == 0, text);
            Assert.Contains("Step 3/4 : RUN wget", text, StringComparison.Ordinal);
            Assert.Contains($"pushed {tag} (sha256:", text, StringComparison.Ordinal); // Core has credentials for its registry
            Assert.Matches($"built sha256:[0-9a-f]{{64}} on h1 as {tag}", text);
            await serve.WaitAsync(TimeSpan.FromSeconds(5));

            var inside = await f.Rig.Hosts[0].DockerAsync(["run", "--rm", "--network", "none", tag, "sh", "-c",
                "ls -a /ctx /ctx/secret; cat /fetched.txt; cat /ctx/link 2>&1; true"]);
            output.WriteLine(inside);
            var lines = inside.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Contains("app.txt", lines);
            Assert.Contains("link", lines);
            Assert.Contains("keep.txt", lines);
            Assert.Contains(".dockerignore", lines);
            Assert.DoesNotContain("debug.log", lines);
            Assert.DoesNotContain("hidden.txt", lines);
            Assert.Contains("served over the rig bridge", lines);
            Assert.DoesNotContain("outside the context", inside, StringComparison.Ordinal); // the link went as a link

            // A failing step: the log streamed, then the step and its exit code; exit code 1.
            await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), $"FROM {DockerRig.Image}\nRUN echo failing now; exit 3\n");
            (code, text) = await Eru("build", dir, "--tag", "edgeeru/cli-broken:1", "--pod", "dev");
            Assert.Equal(1, code);
            Assert.Contains("Step 2/3 : RUN echo failing now; exit 3", text, StringComparison.Ordinal);
            Assert.Contains("eru build: build failed at step 2/3 (RUN echo failing now; exit 3): " +
                "The command '/bin/sh -c echo failing now; exit 3' returned a non-zero code: 3", text, StringComparison.Ordinal);
            (code, text) = await Eru("build", dir, "--tag", "Bad:Tag", "--node", "h1");
            Assert.Equal(2, code);
            Assert.Contains("tags[0] \"Bad:Tag\"", text, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public async Task A_context_of_128_MiB_streams_through_Core_to_the_engine_without_being_held_in_memory()
    {
        const long size = 128 * MiB;
        // The peak resident size of this process (client and eru-core both) from now on: writing 5 to clear_refs resets it.
        await File.WriteAllTextAsync("/proc/self/clear_refs", "5");
        var before = PeakRss();
        var clock = Stopwatch.StartNew();
        using var call = f.Api.Build();
        await call.RequestStream.WriteAsync(new V1.BuildRequest { Options = new() { Node = "h1", Tags = { "edgeeru/big:1" } } });
        var pipe = new System.IO.Pipelines.Pipe();
        var pack = Task.Run(async () =>
        {
            await using (var tar = new TarWriter(pipe.Writer.AsStream(leaveOpen: true), TarEntryFormat.Pax, leaveOpen: false))
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "Dockerfile")
                {
                    DataStream = new MemoryStream(Encoding.UTF8.GetBytes($"FROM {DockerRig.Image}\nCMD [\"sh\"]\n")),
                });
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "big.bin") { DataStream = new Zeros(size) });
            }
            await pipe.Writer.CompleteAsync();
        });
        var buffer = new byte[64 * 1024];
        await using (var context = pipe.Reader.AsStream())
        {
            int n;
            while ((n = await context.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false)) > 0)
                await call.RequestStream.WriteAsync(new V1.BuildRequest { Context = ByteString.CopyFrom(buffer, 0, n) });
        }
        await pack;
        await call.RequestStream.CompleteAsync();
        var events = await call.ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal(V1.BuildEvent.EventOneofCase.Result, events[^1].EventCase);
        var grown = PeakRss() - before;
        output.WriteLine($"{size / MiB} MiB of context in {clock.Elapsed.TotalSeconds:F1} s; peak RSS + {grown / MiB} MiB");
        Assert.True(grown < size / 2, $"the peak resident size grew by {grown / MiB} MiB for a {size / MiB} MiB context");
        using var h1 = f.Engine(1);
        await h1.RemoveImageAsync("edgeeru/big:1");
    }

    /// <summary>VmHWM of this process, in bytes.</summary>
    private static long PeakRss() => 1024 * long.Parse(File.ReadAllLines("/proc/self/status")
        .Single(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1],
        System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Zeros of a given length, made as they are read (seekable, as TarWriter wants to know the length).</summary>
    private sealed class Zeros(long length) : Stream
    {
        private long _position;
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => _position = value; }
        public override void Flush() { }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) =>
            _position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => length + offset };

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private Task<(int Code, string Output)> Eru(params string[] args) =>
        EruCli.RunAsync(output, [.. args, "--core", f.Url, "--token", BuildRigFixture.Token]);

    /// <summary>
    /// Builds through the API: the options, then the context as a tar in 16 KiB chunks; returns every event (also
    /// into <paramref name="seen"/>, which keeps them when the call ends with an error).
    /// </summary>
    private async Task<List<V1.BuildEvent>> BuildAsync(V1.BuildOptions options, IReadOnlyDictionary<string, string> files,
        List<V1.BuildEvent>? seen = null, CancellationToken ct = default)
    {
        var events = seen ?? [];
        // The call's token cancels its reads and writes (with StatusCode.Cancelled, as a client sees it).
        using var call = f.Api.Build(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new V1.BuildRequest { Options = options }, CancellationToken.None);
        var tar = Tar(files);
        try
        {
            const int chunk = 16 * 1024;
            for (var at = 0; at < tar.Length; at += chunk)
            {
                var data = ByteString.CopyFrom(tar, at, Math.Min(chunk, tar.Length - at));
                await call.RequestStream.WriteAsync(new V1.BuildRequest { Context = data }, CancellationToken.None);
            }
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException)
        {
            // Refused before the context was taken: the response says why.
        }
        await foreach (var e in call.ResponseStream.ReadAllAsync(CancellationToken.None))
        {
            lock (events) events.Add(e);
            output.WriteLine(e.EventCase == V1.BuildEvent.EventOneofCase.Log ? "| " + e.Log : e.ToString());
        }
        return events;
    }

    private static byte[] Tar(IReadOnlyDictionary<string, string> files)
    {
        using var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, content) in files)
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
                {
                    Mode = (UnixFileMode)0b110_100_100, DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)),
                });
            }
        }
        return ms.ToArray();
    }

    private static List<string> Logs(List<V1.BuildEvent> events)
    {
        lock (events) return [.. events.Where(e => e.EventCase == V1.BuildEvent.EventOneofCase.Log).Select(e => e.Log)];
    }

    /// <summary>Every container of a host, running or not.</summary>
    private async Task<string> ContainersAsync(int host) =>
        (await f.Rig.Hosts[host - 1].DockerAsync(["ps", "-a", "-q", "--no-trunc"])).Trim();

    /// <summary>Every image of a host, intermediate layers too, with its names.</summary>
    private async Task<string> ImagesAsync(int host) =>
        (await f.Rig.Hosts[host - 1].DockerAsync(["images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"])).Trim();

    private async Task<string> ManifestDigestAsync(string repository, string tag)
    {
        using var http = f.Registry.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Head, new Uri($"v2/{repository}/manifests/{tag}", UriKind.Relative));
        request.Headers.Accept.ParseAdd("application/vnd.docker.distribution.manifest.v2+json");
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return response.Headers.GetValues("Docker-Content-Digest").Single();
    }
}
