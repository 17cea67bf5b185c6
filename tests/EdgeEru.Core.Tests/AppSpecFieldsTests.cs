using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Files;
using EdgeEru.Core.Secrets;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>The pure parts of real apps: spec fields, their checks, sealing, archive renaming, registry hosts.</summary>
public sealed class AppSpecFieldsTests
{
    private static readonly DeploySpec Options = new() { App = "", Entrypoint = "", Image = "img:1", Pod = "dev" };

    private static DeploySpec Parse(string entrypoint, Func<string, byte[]>? readFile = null) =>
        AppSpec.Parse("appname: shop\nentrypoints:\n  web:\n" + string.Join('\n', entrypoint.Split('\n').Select(l => "    " + l)))
            .ToDeploySpec("web", Options, readFile);

    [Fact]
    public void Every_new_field_of_an_entrypoint_reaches_the_deploy_spec()
    {
        var spec = Parse("""
            cmd: sleep 1
            volumes: ["data:/var/lib/shop", "/srv/shared:/shared:ro"]
            data:
              /etc/shop.conf: "a=1\n"
              /etc/shop/key.pem: {content: "k", mode: "0600", owner: "100:101"}
              /etc/shop/big: {file: big.txt}
            secrets: ["db:/run/db", {name: api, mode: "0440", owner: "0:1000"}]
            privileged: true
            cap_add: [NET_ADMIN, SYS_TIME]
            sysctls: {net.core.somaxconn: "512"}
            dns: [10.0.0.2]
            extra_hosts: ["db.local:10.0.0.5"]
            ulimits: {nofile: "1024:4096", nproc: "64"}
            log: {driver: local, options: {max-size: 5m}}
            ignore_pull: true
            hook: {after_create: [true], after_start: [true], before_stop: [true]}
            """, f => Encoding.UTF8.GetBytes("read " + f));
        Assert.Equal([new VolumeSpec("data", "/var/lib/shop", false), new VolumeSpec("/srv/shared", "/shared", true)], spec.Volumes);
        Assert.True(spec.Volumes[0].IsNamed);
        Assert.False(spec.Volumes[1].IsNamed);
        Assert.Equal("a=1\n", Encoding.UTF8.GetString(spec.Files.Single(f => f.Path == "/etc/shop.conf").Content));
        var key = spec.Files.Single(f => f.Path == "/etc/shop/key.pem");
        Assert.Equal((0x180, 100, 101), (key.Mode, key.Uid, key.Gid));
        Assert.Equal(0x1A4, spec.Files[0].Mode); // 0644 by default
        Assert.Equal("read big.txt", Encoding.UTF8.GetString(spec.Files.Single(f => f.Path == "/etc/shop/big").Content));
        Assert.Equal([new SecretMount("db", "/run/db"), new SecretMount("api", "/run/secrets/api", 0x120, 0, 1000)], spec.Secrets);
        Assert.Equal(0x100, spec.Secrets[0].Mode); // 0400 by default
        Assert.True(spec.Runtime.Privileged);
        Assert.Equal(["NET_ADMIN", "SYS_TIME"], spec.Runtime.CapAdd);
        Assert.Equal("512", spec.Runtime.Sysctls["net.core.somaxconn"]);
        Assert.Equal(["10.0.0.2"], spec.Runtime.Dns);
        Assert.Equal(["db.local:10.0.0.5"], spec.Runtime.ExtraHosts);
        Assert.Equal([new Docker.UlimitSpec("nofile", 1024, 4096), new Docker.UlimitSpec("nproc", 64, 64)],
            spec.Runtime.Ulimits.OrderBy(u => u.Name));
        Assert.Equal(("local", "5m"), (spec.Runtime.LogDriver, spec.Runtime.LogOptions["max-size"]));
        Assert.True(spec.IgnorePull);
        Assert.Equal(["true"], spec.AfterCreate);
        Assert.Empty(spec.Problems());
    }

    [Theory]
    [InlineData("volumes: [\"data\"]", "must be NAME:/target or /host/path:/target")]
    [InlineData("volumes: [\"data:/x:rx\"]", "the mode \"rx\" must be ro or rw")]
    [InlineData("data: {/x: {content: a, file: b}}", "give either content or file")]
    [InlineData("data: {/x: {contents: a}}", "unknown field \"contents\" (content, file, mode, owner)")]
    [InlineData("data: {/x: {content: a, owner: alice}}", "owner \"alice\" must be numeric UID or UID:GID")]
    [InlineData("data: {/x: {file: a}}", "file: is read by the eru CLI")]
    [InlineData("secrets: [{target: /x}]", "name is missing")]
    [InlineData("ulimits: {nofile: \"a:b\"}", "must be SOFT or SOFT:HARD")]
    [InlineData("log: {drivers: x}", "unknown field \"drivers\" in log (driver, options)")]
    [InlineData("hook: {after_creat: [x]}", "unknown field \"after_creat\" in hook")]
    public void Malformed_fields_are_refused_naming_the_field(string yaml, string because)
    {
        var ex = Assert.Throws<FormatException>(() => Parse("cmd: sleep 1\n" + yaml));
        Assert.Contains(because, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("volumes: [\"data:/\"]", "target / would hide the image")]
    [InlineData("volumes: [\"data:/a\", \"logs:/a\"]", "/a is mounted twice")]
    [InlineData("volumes: [\"data:/a\", \"data:/b\"]", "the named volume data is listed twice")]
    [InlineData("volumes: [\"/srv/../etc:/a\"]", "host path must be normalized")]
    [InlineData("data: {etc/x: a}", "data: \"etc/x\": must be an absolute path")]
    [InlineData("data: {/x: {content: a, mode: \"10000\"}}", "mode 10000 is not a file mode")]
    [InlineData("secrets: [\"db:/x\"]\ndata: {/x: a}", "/x is also written by another data file or secret")]
    [InlineData("secrets: [\"a b\"]", "secrets: name \"a b\"")]
    [InlineData("cap_add: [net_admin]", "\"net_admin\" is not a capability name")]
    [InlineData("sysctls: {kernel: \"1\"}", "\"kernel\" is not a sysctl name")]
    [InlineData("sysctls: {net.ipv4.ip_forward: \"\"}", "the value must be 1-256 printable characters")]
    [InlineData("dns: [ns1]", "dns: \"ns1\" is not an IP address")]
    [InlineData("extra_hosts: [\"db:1.2.3\"]", "must be NAME:ADDRESS")]
    [InlineData("ulimits: {nofile: \"10:5\"}", "soft 10 must be at most hard 5")]
    [InlineData("log: {options: {max-size: 1m}}", "log: options need a driver")]
    [InlineData("log: {driver: \"Bad Driver\"}", "is not a driver name")]
    public void Out_of_range_values_are_problems_of_the_spec(string yaml, string problem)
    {
        var problems = Parse("cmd: sleep 1\n" + yaml).Problems();
        Assert.Contains(problems, p => p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Data_files_are_limited_to_a_megabyte_in_all()
    {
        var spec = Options with
        {
            App = "a", Entrypoint = "w", Files = [new DataFile("/a", new byte[700_000]), new DataFile("/b", new byte[400_000])],
        };
        Assert.Contains(spec.Problems(), p => p.Contains("at most 1048576", StringComparison.Ordinal));
    }

    [Fact]
    public void A_sealed_secret_opens_only_with_its_key_and_its_name()
    {
        var box = new SecretBox(RandomNumberGenerator.GetBytes(32));
        var sealedValue = box.Seal("hunter2"u8, "db");
        Assert.DoesNotContain("hunter2", Encoding.UTF8.GetString(sealedValue), StringComparison.Ordinal);
        Assert.Equal("hunter2", Encoding.UTF8.GetString(box.Open(sealedValue, "db")));
        Assert.NotEqual(sealedValue, box.Seal("hunter2"u8, "db")); // a fresh nonce each time
        Assert.Throws<CryptographicException>(() => box.Open(sealedValue, "other"));
        Assert.Throws<CryptographicException>(() => new SecretBox(RandomNumberGenerator.GetBytes(32)).Open(sealedValue, "db"));
        sealedValue[^1] ^= 1;
        Assert.Throws<CryptographicException>(() => box.Open(sealedValue, "db"));
        Assert.Throws<ArgumentException>(() => new SecretBox(new byte[16]));
    }

    [Fact]
    public void A_key_file_may_be_raw_base64_or_hex()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var dir = Directory.CreateTempSubdirectory("eru-key-").FullName;
        try
        {
            var sealedValue = new SecretBox(key).Seal("x"u8, "n");
            foreach (var content in new[]
                { key, Encoding.ASCII.GetBytes(Convert.ToBase64String(key) + "\n"), Encoding.ASCII.GetBytes(Convert.ToHexString(key)) })
            {
                var file = Path.Combine(dir, "k");
                File.WriteAllBytes(file, content);
                Assert.Equal("x"u8.ToArray(), SecretBox.FromFile(file).Open(sealedValue, "n"));
            }
            File.WriteAllText(Path.Combine(dir, "short"), "abc");
            Assert.Contains("32 bytes", Assert.Throws<ArgumentException>(() => SecretBox.FromFile(Path.Combine(dir, "short"))).Message,
                StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("busybox", null)]
    [InlineData("library/nginx:1", null)]
    [InlineData("registry.example.com/shop/web:2", "registry.example.com")]
    [InlineData("198.18.0.254:5000/edgeeru/busybox:1", "198.18.0.254:5000")]
    [InlineData("localhost/app", "localhost")]
    public void The_registry_host_of_an_image_follows_Docker_s_rule(string image, string? host) =>
        Assert.Equal(host, RegistryAuth.HostOf(image));

    [Theory]
    [InlineData("registry.example.com", true)]
    [InlineData("10.0.0.5:5000", true)]
    [InlineData("10.0.0.5:0", false)]
    [InlineData("a b", false)]
    [InlineData("*.example.com", false)]
    [InlineData("", false)]
    public void Registry_hosts_are_names_or_addresses_with_a_port(string host, bool ok) => Assert.Equal(ok, RegistryAuth.IsHost(host));

    [Fact]
    public async Task Renaming_an_archive_s_top_entry_keeps_everything_below_it_and_refuses_escapes()
    {
        var tar = new MemoryStream();
        await using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            await w.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, "www/"));
            await w.WriteEntryAsync(
                new PaxTarEntry(TarEntryType.RegularFile, "www/index.html") { DataStream = new MemoryStream("hi"u8.ToArray()) });
            await w.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, "www/home") { LinkName = "index.html" });
        }
        // Through a stream that cannot seek, as archives come from Docker.
        var renamed = new MemoryStream();
        await Archives.RenameTopAsync(new ForwardOnly(new MemoryStream(tar.ToArray())), "site", renamed);
        renamed.Position = 0;
        var names = new List<string>();
        await using (var r = new TarReader(renamed))
            while (await r.GetNextEntryAsync() is { } e)
            {
                names.Add(e.Name);
                if (e.Name == "site/index.html") Assert.Equal("hi", new StreamReader(e.DataStream!).ReadToEnd());
            }
        Assert.Equal(["site/", "site/index.html", "site/home"], names);

        var evil = new MemoryStream();
        await using (var w = new TarWriter(evil, TarEntryFormat.Pax, leaveOpen: true))
        {
            await w.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "a") { DataStream = new MemoryStream() });
            await w.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "a/../../etc/passwd") { DataStream = new MemoryStream() });
        }
        evil.Position = 0;
        await Assert.ThrowsAsync<InvalidDataException>(() => Archives.RenameTopAsync(evil, "b", new MemoryStream()));
        await Assert.ThrowsAsync<ArgumentException>(() => Archives.RenameTopAsync(new MemoryStream(), "a/b", new MemoryStream()));
    }

    private sealed class ForwardOnly(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
