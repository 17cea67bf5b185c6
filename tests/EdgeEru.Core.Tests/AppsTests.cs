using System.Diagnostics;
using System.Text;
using EdgeEru.Docker;
using EdgeEru.Registry;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Real apps through the eru CLI and eru-core, on real dockerd hosts and etcd: volumes kept through a replace,
/// data files, secrets, runtime options, hooks, jobs, files in and out, and bad input refused with nothing left.
/// </summary>
[Collection(AppsRigCollection.Name)]
public sealed class AppsTests(AppsRig rig, ITestOutputHelper output) : IClassFixture<AppsRig>, IDisposable
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(30);
    private readonly int _logFrom = rig.CoreLog.Count;

    /// <summary>What eru-core and the agents logged during the test, after its own output.</summary>
    public void Dispose()
    {
        foreach (var line in rig.CoreLog.Skip(_logFrom)) output.WriteLine("core| " + line);
    }

    /// <summary>A busybox counter: each start of a container adds one to /data/count and serves it over HTTP.</summary>
    private string CounterSpec(string app, string? volumes = null)
    {
        Directory.CreateDirectory(Path.Combine(rig.BindRoot, "shared"));
        return Spec(app, $$"""
        appname: {{app}}
        entrypoints:
          web:
            image: edgeeru/busybox:test
            cmd: {{"sh -c 'mkdir -p /data; n=$(cat /data/count 2>/dev/null || echo 0); echo $((n+1)) > /data/count; " +
                "mkdir -p /www; cat /data/count > /www/index.html; exec httpd -f -p 80 -h /www'"}}
            ports: ["http:80/tcp"]
            healthcheck: {http_port: http, url: /, interval_ms: 300, timeout_ms: 1000}
            volumes: {{volumes ?? $"[\"data:/data\", \"{rig.BindRoot}/shared:/shared:ro\"]"}}
            data:
              /etc/counter.conf: "step=1\n"
              /etc/counter/owned.conf:
                content: owned
                mode: "0640"
                owner: "1000:1000"
            secrets: ["{{app}}-token:/run/secrets/token"]
            cap_add: [NET_ADMIN]
            sysctls: {net.core.somaxconn: "1024"}
            dns: ["198.18.0.1"]
            extra_hosts: ["db.local:198.18.0.5"]
            ulimits: {nofile: "1024:2048"}
            log:
              driver: json-file
              options: {max-size: 1m}
            hook:
              after_create: ["sh -c 'mkdir -p /data; echo created >> /data/created'"]
              after_start: ["sh -c 'echo started >> /tmp/started'"]
        """);
    }

    private string Spec(string name, string yaml)
    {
        var path = Path.Combine(rig.Dir, name + ".yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static string[] On(string node) => ["--pod", "dev", "--memory", "32M", "--network", "eru-mv", "--node", node];

    private async Task<string> ExecAsync(string node, string container, string command) =>
        (await rig.Host(node).DockerAsync(["exec", container, "sh", "-c", command])).Trim();

    private async Task<string> SetSecretAsync(string name)
    {
        var value = "v-" + Guid.NewGuid().ToString("N");
        var (code, _, _) = await rig.EruAsync(output, Encoding.UTF8.GetBytes(value), "secret", "set", name);
        Assert.Equal(0, code);
        return value;
    }

    [Fact]
    public async Task A_stateful_app_gets_its_files_secrets_and_options_and_keeps_its_volume_through_a_replace()
    {
        var spec = CounterSpec("counter");
        await File.WriteAllTextAsync(Path.Combine(rig.BindRoot, "shared", "hello.txt"), "from the host");
        var token = await SetSecretAsync("counter-token");
        var (code, deployed, _) = await rig.EruAsync(output, ["deploy", spec, .. On("h1")]);
        Assert.True(code == 0, deployed);
        var first = Assert.Single(await rig.RecordsAsync("counter"));
        await Eventually.True(() => rig.IsLive(first.Id), Soon, "the counter is live");

        // Files, secret, bind mount, options: as the spec says, inside the container.
        Assert.Equal("1", await ExecAsync("h1", first.Id, "cat /data/count"));
        Assert.Equal("step=1", await ExecAsync("h1", first.Id, "cat /etc/counter.conf"));
        Assert.StartsWith("-rw-r-----    1 1000     1000", await ExecAsync("h1", first.Id, "ls -ln /etc/counter/owned.conf"));
        Assert.Equal(token, await ExecAsync("h1", first.Id, "cat /run/secrets/token"));
        Assert.StartsWith("-r--------    1 0        0", await ExecAsync("h1", first.Id, "ls -ln /run/secrets/token"));
        Assert.Equal("from the host", await ExecAsync("h1", first.Id, "cat /shared/hello.txt"));
        Assert.NotEqual("0", await ExecAsync("h1", first.Id, "echo x > /shared/w 2>/dev/null; echo $?")); // read-only
        Assert.Equal("1024", await ExecAsync("h1", first.Id, "cat /proc/sys/net/core/somaxconn"));
        Assert.Contains("db.local", await ExecAsync("h1", first.Id, "cat /etc/hosts"));
        Assert.Matches(@"Max open files\s+1024\s+2048", await ExecAsync("h1", first.Id, "cat /proc/1/limits"));
        // On a user-defined network Docker's resolver (127.0.0.11) forwards to the spec's servers: the engine holds them.
        Assert.Equal("[NET_ADMIN] json-file 1m [198.18.0.1]", (await rig.Host("h1").DockerAsync(["inspect", "-f",
            "{{.HostConfig.CapAdd}} {{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{.HostConfig.Dns}}",
            first.Id])).Trim());
        Assert.Equal("created", await ExecAsync("h1", first.Id, "cat /data/created"));
        Assert.Equal("started", await ExecAsync("h1", first.Id, "cat /tmp/started"));

        // The record holds where the data is and which secrets went in, never their content.
        var volume = Assert.Single(first.Volumes!, v => v.Kind == "volume");
        Assert.Equal(("data", "/data"), (volume.Name, volume.Target));
        Assert.Contains(first.Volumes!, v => v is { Kind: "bind", ReadOnly: true, Target: "/shared" });
        Assert.Equal(["counter-token"], first.Secrets!);
        var raw = Encoding.UTF8.GetString(Kinds.Workloads.Encode(first));
        Assert.DoesNotContain(token, raw, StringComparison.Ordinal);

        // A restart runs after_start again, not after_create.
        Assert.Equal(0, (await rig.EruAsync(output, "restart", first.Name)).Code);
        Assert.Equal("started\nstarted", await ExecAsync("h1", first.Id, "cat /tmp/started"));
        Assert.Equal("created", await ExecAsync("h1", first.Id, "cat /data/created"));
        Assert.Equal("2", await ExecAsync("h1", first.Id, "cat /data/count"));

        // Replace on the same node: the successor takes the volume, so the count goes on.
        var (replaced, text, _) = await rig.EruAsync(output, ["replace", spec, .. On("h1"), "--health-timeout", "30"]);
        Assert.True(replaced == 0, text);
        var second = Assert.Single(await rig.RecordsAsync("counter"));
        Assert.NotEqual(first.Id, second.Id);
        Assert.Equal(volume.Source, second.Volumes!.Single(v => v.Kind == "volume").Source);
        Assert.Equal("3", await ExecAsync("h1", second.Id, "cat /data/count"));
        Assert.Equal([volume.Source], await rig.VolumesAsync("counter")); // the old instance's removal kept it

        // A spec that drops the volume would lose its data: refused, unless allowed; the instance keeps serving.
        var noVolume = CounterSpec("counter", volumes: "[]");
        var (refused, said, why) = await rig.EruAsync(output, ["replace", noVolume, .. On("h1")]);
        Assert.NotEqual(0, refused);
        Assert.Contains("would lose the data of its volume(s) data", said + why, StringComparison.Ordinal);
        Assert.Equal(second.Id, Assert.Single(await rig.RecordsAsync("counter")).Id);
        await Eventually.True(() => rig.IsLive(second.Id), Soon, "the counter serves on");
        Assert.Equal(0, (await rig.EruAsync(output, ["replace", noVolume, .. On("h1"), "--allow-data-loss"])).Code);
        await Eventually.True(async () => (await rig.VolumesAsync("counter")).Count == 0, Soon, "the dropped volume is gone");

        // Removing the app removes its containers and records; the secret is free again.
        Assert.Equal(0, (await rig.EruAsync(output,
            ["rm", .. (await rig.RecordsAsync("counter")).Select(w => w.Name), "--stop-timeout", "0"])).Code);
        Assert.Empty(await rig.ContainersAsync("counter"));
        Assert.Equal(0, (await rig.EruAsync(output, "secret", "rm", "counter-token")).Code);
        Assert.DoesNotContain(rig.CoreLog, line => line.Contains(token, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Removing_an_instance_removes_its_named_volumes()
    {
        await SetSecretAsync("vol-token");
        var spec = CounterSpec("vol");
        Assert.Equal(0, (await rig.EruAsync(output, ["deploy", spec, .. On("h2"), "--count", "2"])).Code);
        var records = (await rig.RecordsAsync("vol")).OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        Assert.Equal(2, records.Count);
        Assert.Equal(2, (await rig.VolumesAsync("vol")).Count); // one per instance
        Assert.Equal(0, (await rig.EruAsync(output, "rm", records[0].Name, "--stop-timeout", "0")).Code);
        Assert.Equal([records[1].Volumes!.Single(v => v.Kind == "volume").Source], await rig.VolumesAsync("vol"));
        Assert.Equal(0, (await rig.EruAsync(output, "rm", records[1].Name, "--stop-timeout", "0")).Code);
        Assert.Empty(await rig.VolumesAsync("vol"));
        Assert.Equal(0, (await rig.EruAsync(output, "secret", "rm", "vol-token")).Code);
    }

    [Fact]
    public async Task Bad_input_is_refused_with_the_reason_and_leaves_nothing_behind()
    {
        async Task Refused(string yaml, string because, params string[] extra)
        {
            var (code, stdout, stderr) = await rig.EruAsync(output, ["deploy", Spec("bad", yaml), .. On("h1"), .. extra]);
            Assert.NotEqual(0, code);
            Assert.Contains(because, stdout + stderr, StringComparison.Ordinal);
        }
        string With(string lines) => $$"""
            appname: bad
            entrypoints:
              web:
                image: edgeeru/busybox:test
                cmd: sleep 600
            {{string.Join('\n', lines.Split('\n').Select(l => "    " + l))}}
            """;
        await Refused(With("volumes: [\"/etc:/host-etc\"]"), $"the host path /etc is outside the allowed roots ({rig.BindRoot})");
        await Refused(With($"volumes: [\"{rig.BindRoot}/../etc:/x\"]"), "must be normalized");
        await Refused(With("volumes: [\"data:relative\"]"), "target must be an absolute path");
        await Refused(With("volumes: [\"Data_1:/x\"]"), "the volume name \"Data_1\" must be a DNS label");
        await Refused(With("secrets: [\"no-such-secret\"]"), "secret no-such-secret does not exist");
        await Refused(With("sysctls: {\"not a sysctl\": \"1\"}"), "\"not a sysctl\" is not a sysctl name");
        await Refused(With("extra_hosts: [\"db.local\"]"), "must be NAME:ADDRESS");
        await Refused(With("ulimits: {nofiles: \"10\"}"), "\"nofiles\" is not a limit");
        await Refused(With("data: {\"/etc/x\": {content: \"a\", mode: \"0999\"}}"), "mode \"0999\" is not an octal file mode");
        await Refused(With("volume: [\"data:/data\"]"), "unknown field \"volume\" in an entrypoint");
        await Refused(With("hook: {after_create: [\"sh -c 'unterminated\"]}"), "hooks:");
        await Refused(With("privileged: false"), "secrets: x: target \"/not/../normal\": must be normalized",
            "--secret", "x:/not/../normal");
        Assert.Empty(await rig.ContainersAsync("bad"));
        Assert.Empty(await rig.RecordsAsync("bad"));
        Assert.Empty(await rig.VolumesAsync("bad"));

        // A hook that fails fails the instance: its container and its fresh volume are rolled back.
        await Refused(With("volumes: [\"data:/data\"]\nhook: {after_create: [\"false\"]}"), "after_create hook `false` exited 1");
        Assert.Empty(await rig.ContainersAsync("bad"));
        Assert.Empty(await rig.VolumesAsync("bad"));
    }

    [Fact]
    public async Task A_job_streams_its_output_returns_its_exit_code_and_leaves_nothing()
    {
        var token = await SetSecretAsync("job-token");
        var spec = Spec("job", """
            appname: job
            entrypoints:
              migrate:
                image: edgeeru/busybox:test
                cmd: sleep 600
                ports: ["http:80/tcp"]
                volumes: ["work:/work"]
                secrets: ["job-token"]
            """);
        var (code, stdout, stderr) = await rig.EruAsync(output,
            ["run", spec, "--pod", "dev", "--memory", "16M", "--network", "eru-mv", "--env", "STEP=7",
            "--", "sh", "-c", "echo out $STEP; echo err >&2; [ -s /run/secrets/job-token ] && echo has-token; echo w > /work/x; exit 3"]);
        Assert.Equal(3, code);
        Assert.Equal("out 7\nhas-token\n", stdout);
        Assert.Contains("err", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(token, stdout + stderr, StringComparison.Ordinal);
        Assert.Empty(await rig.ContainersAsync("job"));
        Assert.Empty(await rig.RecordsAsync("job"));
        Assert.Empty(await rig.VolumesAsync("job"));

        // While it runs it is counted on its node, but never live (no DNS, no LB).
        using (var running = EruCli.Start(
            rig.CliArgs("run", spec, "--pod", "dev", "--memory", "16M", "--network", "eru-mv", "--", "sleep", "60")))
        {
            var job = await Eventually.Value(async () => (await rig.RecordsAsync("job")).FirstOrDefault(), Soon, "the job's record");
            Assert.True(job.Job);
            await Eventually.True(async () => (await rig.ContainersAsync("job")).Any(c => c.Running), Soon, "the job runs");
            await Task.Delay(1500); // its agent reports it running meanwhile
            Assert.False(rig.IsLive(job.Id));
            Assert.Equal("a job (never served)", rig.WhyNotLive(job.Id));

            // Ctrl-C kills it, and it is removed.
            Dev.Posix.Interrupt(running.Id);
            await running.WaitForExitAsync().WaitAsync(Soon);
            output.WriteLine(await running.StandardError.ReadToEndAsync());
        }
        await Eventually.True(async () => (await rig.ContainersAsync("job")).Count == 0 && (await rig.RecordsAsync("job")).Count == 0, Soon,
            "the interrupted job is gone");

        // A timeout kills it: exit 124 and a message.
        var watch = Stopwatch.StartNew();
        var timedOut = await rig.EruAsync(output, ["run", spec, "--pod", "dev", "--memory", "16M", "--timeout", "1", "--", "sleep", "60"]);
        Assert.Equal(124, timedOut.Code);
        Assert.Contains("timed out after 1 s", timedOut.Stderr, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Empty(await rig.ContainersAsync("job"));

        // --keep keeps the exited container and its record for a look.
        var kept = await rig.EruAsync(output,
            ["run", spec, "--pod", "dev", "--memory", "16M", "--keep", "--", "sh", "-c", "echo kept > /tmp/k"]);
        Assert.Equal(0, kept.Code);
        var keptRecord = Assert.Single(await rig.RecordsAsync("job"));
        Assert.False(Assert.Single(await rig.ContainersAsync("job")).Running);
        Assert.Equal(0, (await rig.EruAsync(output, "rm", keptRecord.Name)).Code);
        Assert.Empty(await rig.VolumesAsync("job"));

        // No command, or a missing secret: refused before anything is made.
        Assert.NotEqual(0, (await rig.EruAsync(output, ["run", spec, "--pod", "dev", "--secret", "nope", "--", "true"])).Code);
        Assert.Empty(await rig.ContainersAsync("job"));
        Assert.Equal(0, (await rig.EruAsync(output, "secret", "rm", "job-token")).Code);
    }

    [Fact]
    public async Task Files_go_in_and_out_of_a_container_through_the_API()
    {
        var spec = Spec("files", """
            appname: files
            entrypoints:
              web:
                image: edgeeru/busybox:test
                cmd: sleep 600
            """);
        Assert.Equal(0, (await rig.EruAsync(output, ["deploy", spec, .. On("h1")])).Code);
        var w = Assert.Single(await rig.RecordsAsync("files"));
        var local = Path.Combine(rig.Dir, "files-in");
        Directory.CreateDirectory(Path.Combine(local, "sub"));
        await File.WriteAllTextAsync(Path.Combine(local, "a.txt"), "alpha");
        await File.WriteAllTextAsync(Path.Combine(local, "sub", "b.txt"), "beta");

        // In: a folder into an existing folder, and a file under a new name.
        Assert.Equal(0, (await rig.EruAsync(output, "cp", local, $"{w.Name}:/tmp")).Code);
        Assert.Equal("beta", await ExecAsync("h1", w.Id, "cat /tmp/files-in/sub/b.txt"));
        Assert.Equal(0, (await rig.EruAsync(output, "cp", Path.Combine(local, "a.txt"), $"{w.Name}:/tmp/renamed.txt")).Code);
        Assert.Equal("alpha", await ExecAsync("h1", w.Id, "cat /tmp/renamed.txt"));

        // Out: a folder under a new local name, and a file into an existing folder.
        var back = Path.Combine(rig.Dir, "files-back");
        Assert.Equal(0, (await rig.EruAsync(output, "cp", $"{w.Name}:/tmp/files-in", back)).Code);
        Assert.Equal("beta", await File.ReadAllTextAsync(Path.Combine(back, "sub", "b.txt")));
        Assert.Equal(0, (await rig.EruAsync(output, "cp", $"{w.Id[..12]}:/tmp/renamed.txt", back)).Code);
        Assert.Equal("alpha", await File.ReadAllTextAsync(Path.Combine(back, "renamed.txt")));

        // What is not there is said clearly.
        var missing = await rig.EruAsync(output, "cp", $"{w.Name}:/no/such/file", back);
        Assert.NotEqual(0, missing.Code);
        Assert.Contains("no /no/such/file in the container", missing.Stderr, StringComparison.Ordinal);
        var noDir = await rig.EruAsync(output, "cp", local, $"{w.Name}:/no/such/dir");
        Assert.Contains("no directory /no/such in the container", noDir.Stderr, StringComparison.Ordinal);
        var noWorkload = await rig.EruAsync(output, "cp", local, "nosuchworkload:/tmp");
        Assert.Contains("no workload nosuchworkload", noWorkload.Stderr, StringComparison.Ordinal);
        var relative = await rig.EruAsync(output, "cp", local, $"{w.Name}:tmp");
        Assert.Contains("must be absolute", relative.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await rig.EruAsync(output, "rm", w.Name, "--stop-timeout", "0")).Code);
    }

    [Fact]
    public async Task Secrets_are_sealed_in_the_private_root_listed_without_content_and_kept_while_used()
    {
        var value = await SetSecretAsync("sealed");
        var etcd = rig.Store;
        var keys = new RegistryKeys(rig.Prefix);
        Assert.StartsWith(rig.Prefix + "-private/secrets/", keys.Key(Kinds.Secrets, "sealed"), StringComparison.Ordinal);
        var stored = (await etcd.GetAsync(Kinds.Secrets, "sealed"))!.Value;
        Assert.DoesNotContain(value, Encoding.UTF8.GetString(Kinds.Secrets.Encode(stored)), StringComparison.Ordinal);
        Assert.Equal(value.Length, stored.Size);

        var (_, listed, _) = await rig.EruAsync(output, "secret", "ls");
        Assert.Contains("sealed", listed, StringComparison.Ordinal);
        Assert.DoesNotContain(value, listed, StringComparison.Ordinal);
        var json = await rig.EruAsync(output, "secret", "ls", "--json");
        Assert.DoesNotContain(value, json.Stdout, StringComparison.Ordinal);

        // In use: kept until forced.
        var spec = Spec("sec", """
            appname: sec
            entrypoints:
              web:
                image: edgeeru/busybox:test
                cmd: sleep 600
                secrets: [{name: sealed, target: /etc/app/key, mode: "0440", owner: "0:1000"}]
            """);
        Assert.Equal(0, (await rig.EruAsync(output, ["deploy", spec, .. On("h2")])).Code);
        var w = Assert.Single(await rig.RecordsAsync("sec"));
        Assert.StartsWith("-r--r-----    1 0        1000", await ExecAsync("h2", w.Id, "ls -ln /etc/app/key"));
        var inUse = await rig.EruAsync(output, "secret", "rm", "sealed");
        Assert.NotEqual(0, inUse.Code);
        Assert.Contains($"used by 1 workload(s) ({w.Name})", inUse.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await rig.EruAsync(output, "secret", "rm", "sealed", "--force")).Code);
        Assert.Null(await etcd.GetAsync(Kinds.Secrets, "sealed"));
        Assert.Equal(0, (await rig.EruAsync(output, "rm", w.Name, "--stop-timeout", "0")).Code);

        var badName = await rig.EruAsync(output, Encoding.UTF8.GetBytes("x"), "secret", "set", "no/slash");
        Assert.Contains("secret name \"no/slash\"", badName.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(rig.CoreLog, line => line.Contains(value, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_private_registry_image_is_pulled_with_stored_credentials_and_wrong_ones_leave_nothing()
    {
        await using var registry = await Dev.ImageRegistry.StartAsync(rig.Rig.BridgeAddress, "puller");
        var image = $"{registry.Host}/apps/busybox:1";
        using (var h1 = new DockerEngine(new Registry.Model.DockerEndpoint { Address = rig.Host("h1").Endpoint }))
        {
            await h1.TagAsync(Dev.DockerRig.Image, image);
            await h1.PushAsync(image, registry.Auth, null, default);
        }
        var spec = Spec("private", $$"""
            appname: private
            entrypoints:
              web:
                image: {{image}}
                cmd: sleep 600
            """);

        // Wrong password stored: the pull is refused with the registry and user named; nothing is left on h2.
        Assert.Equal(0, (await rig.EruAsync(output, Encoding.UTF8.GetBytes("wrong\n"),
            "registry-auth", "add", registry.Host, "--user", "puller",
            "--password-stdin")).Code);
        var (code, text, err) = await rig.EruAsync(output, ["deploy", spec, .. On("h2")]);
        Assert.NotEqual(0, code);
        Assert.Contains($"the registry {registry.Host} refused the credentials of user \"puller\"", text + err, StringComparison.Ordinal);
        Assert.Empty(await rig.ContainersAsync("private"));
        Assert.Empty(await rig.RecordsAsync("private"));
        using var h2 = new DockerEngine(new Registry.Model.DockerEndpoint { Address = rig.Host("h2").Endpoint });
        Assert.False(await h2.ImageExistsAsync(image));

        // The right one: pulled and running; the password never shows.
        Assert.Equal(0, (await rig.EruAsync(output, Encoding.UTF8.GetBytes(registry.Password + "\n"), "registry-auth", "add", registry.Host,
            "--user", "puller", "--password-stdin")).Code);
        Assert.Equal(0, (await rig.EruAsync(output, ["deploy", spec, .. On("h2")])).Code);
        Assert.True(await h2.ImageExistsAsync(image));
        var (_, listed, _) = await rig.EruAsync(output, "registry-auth", "ls");
        Assert.Contains(registry.Host, listed, StringComparison.Ordinal);
        Assert.DoesNotContain(registry.Password, listed, StringComparison.Ordinal);
        Assert.DoesNotContain(rig.CoreLog, line => line.Contains(registry.Password, StringComparison.Ordinal));
        Assert.Equal(0, (await rig.EruAsync(output,
            ["rm", Assert.Single(await rig.RecordsAsync("private")).Name, "--stop-timeout", "0"])).Code);
        Assert.Equal(0, (await rig.EruAsync(output, "registry-auth", "rm", registry.Host)).Code);
        await h2.RemoveImageAsync(image);
    }
}
