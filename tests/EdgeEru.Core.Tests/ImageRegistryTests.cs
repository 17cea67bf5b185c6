using System.Text.Json;
using EdgeEru.Docker;
using EdgeEru.Dev;
using EdgeEru.Registry.Model;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Two simulated hosts and a real private registry (TLS from a private CA, htpasswd) on the rig's bridge;
/// host 1 pushed the busybox image to it, and host 2 starts without that image so its pulls really download.
/// </summary>
public sealed class RegistryRigFixture : IAsyncLifetime
{
    public const string User = "alice";
    public DockerRig Rig { get; private set; } = null!;
    public ImageRegistry Registry { get; private set; } = null!;

    /// <summary>What host 1 pushed: the rig's busybox as {registry}/edgeeru/busybox:1.</summary>
    public string Pushed => $"{Registry.Host}/edgeeru/busybox:1";

    /// <summary>Progress lines of that push.</summary>
    public List<string> PushLog { get; } = [];

    public DockerEngine Engine(int host) => new(new DockerEndpoint { Address = Rig.Hosts[host - 1].Endpoint });

    public async Task InitializeAsync()
    {
        Rig = await DockerRig.StartAsync(hosts: 2);
        Registry = await ImageRegistry.StartAsync(Rig.BridgeAddress, User, "s3cret-" + Guid.NewGuid().ToString("N")[..8]);
        using var h1 = Engine(1);
        await h1.TagAsync(DockerRig.Image, Pushed);
        await h1.PushAsync(Pushed, Registry.Auth, new SyncLog(PushLog), default);
        using var h2 = Engine(2);
        await h2.RemoveImageAsync(DockerRig.Image);
    }

    public async Task DisposeAsync()
    {
        if (Registry is not null) await Registry.DisposeAsync();
        if (Rig is not null) await Rig.DisposeAsync();
    }
}

/// <summary>Collects progress lines as they come (Progress&lt;T&gt; would post them to the thread pool, late).</summary>
internal sealed class SyncLog(List<string> lines) : IProgress<string>
{
    public void Report(string value)
    {
        lock (lines) lines.Add(value);
    }
}

/// <summary>The Docker driver's pull and push against a real registry, and what each failure says.</summary>
[Collection(AppsRigCollection.Name)]
public sealed class ImageRegistryTests(RegistryRigFixture f) : IClassFixture<RegistryRigFixture>
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_push_with_the_right_credentials_puts_the_image_in_the_registry()
    {
        Assert.Contains(f.PushLog, l => l.StartsWith("Pushed ", StringComparison.Ordinal));
        Assert.Contains(f.PushLog, l => l.StartsWith("Pushing ", StringComparison.Ordinal) && l.Contains(" / ", StringComparison.Ordinal));
        using var http = f.Registry.CreateClient();
        using var tags = JsonDocument.Parse(await http.GetStringAsync(new Uri("v2/edgeeru/busybox/tags/list", UriKind.Relative)));
        Assert.Equal(["1"], tags.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public async Task A_pull_with_the_right_credentials_brings_the_image_to_another_host()
    {
        using var h2 = f.Engine(2);
        await h2.RemoveImageAsync(f.Pushed);
        Assert.False(await h2.ImageExistsAsync(DockerRig.Image)); // nothing to reuse: the layer comes over the wire

        using var cts = new CancellationTokenSource(Quick);
        await h2.EnsureImageAsync(f.Pushed, f.Registry.Auth, cts.Token);
        Assert.True(await h2.ImageExistsAsync(f.Pushed));
        Assert.Equal(await ImageIdAsync(1, DockerRig.Image), await ImageIdAsync(2, f.Pushed));
        await h2.EnsureImageAsync(f.Pushed, null, cts.Token); // present: no pull, so no credentials needed

        var spec = new ContainerSpec { Name = "pulled_" + Guid.NewGuid().ToString("N")[..6], Image = f.Pushed, Command = ["sleep", "30"] };
        var id = await h2.CreateAndStartAsync(spec, cts.Token);
        try
        {
            Assert.Equal("from the registry", (await h2.ExecAsync(id, ["echo", "from the registry"], Quick, cts.Token)).Output);
        }
        finally
        {
            await h2.RemoveAsync(id, TimeSpan.Zero, CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_pull_with_a_wrong_password_names_registry_and_user_and_leaves_nothing_behind()
    {
        var ex = await FailedPullAsync(f.Pushed, $"{RegistryRigFixture.User}:wrong");
        Assert.Equal(ImageTransferFailure.Unauthorized, ex.Failure);
        Assert.Equal($"pull {f.Pushed}: the registry {f.Registry.Host} refused the credentials of user \"alice\" " +
            "(unauthorized: authentication required)", ex.Message);
    }

    [Fact]
    public async Task A_pull_without_credentials_says_they_are_missing_and_how_to_add_them()
    {
        var ex = await FailedPullAsync(f.Pushed, null);
        Assert.Equal(ImageTransferFailure.CredentialsMissing, ex.Failure);
        Assert.Equal($"pull {f.Pushed}: the registry {f.Registry.Host} needs credentials and none were given " +
            $"(no basic auth credentials): add them with `eru registry-auth add {f.Registry.Host} --user USER --password-stdin`",
            ex.Message);
    }

    [Fact]
    public async Task A_pull_of_a_missing_tag_or_repository_says_the_registry_has_none()
    {
        var tag = $"{f.Registry.Host}/edgeeru/busybox:2";
        var ex = await FailedPullAsync(tag, f.Registry.Auth);
        Assert.Equal(ImageTransferFailure.NotFound, ex.Failure);
        Assert.Equal($"pull {tag}: the registry {f.Registry.Host} has no edgeeru/busybox:2 " +
            $"(manifest for {tag} not found: manifest unknown: manifest unknown)", ex.Message);
        var repository = $"{f.Registry.Host}/edgeeru/nothing:1";
        ex = await FailedPullAsync(repository, f.Registry.Auth);
        Assert.Equal(ImageTransferFailure.NotFound, ex.Failure);
        Assert.StartsWith($"pull {repository}: the registry {f.Registry.Host} has no edgeeru/nothing:1 (", ex.Message);
    }

    [Fact]
    public async Task A_registry_whose_CA_the_engine_does_not_trust_fails_with_the_TLS_message_until_certs_d_has_it()
    {
        await using var untrusted = await ImageRegistry.StartAsync(f.Rig.BridgeAddress, RegistryRigFixture.User, "pw",
            trustedByEngines: false);
        var image = $"{untrusted.Host}/edgeeru/busybox:1";
        var ex = await FailedPullAsync(image, untrusted.Auth);
        Assert.Equal(ImageTransferFailure.UntrustedCertificate, ex.Failure);
        Assert.Equal($"pull {image}: the engine does not trust the certificate of the registry {untrusted.Host} " +
            $"(x509: certificate signed by unknown authority): the certificate must name {untrusted.Host} and chain to a CA " +
            $"the engine trusts; put that CA at /etc/docker/certs.d/{untrusted.Host}/ca.crt on the engine's host " +
            "(dockerd reads it on every pull and push, no restart needed)",
            ex.Message);

        // The rig's dockerd (own --data-root and --exec-root) reads the global certs.d, live: TLS passes now,
        // and the empty registry has no such tag.
        untrusted.TrustOnEngines();
        ex = await FailedPullAsync(image, untrusted.Auth);
        Assert.Equal(ImageTransferFailure.NotFound, ex.Failure);
    }

    [Fact]
    public async Task A_push_with_a_wrong_password_or_none_or_of_an_absent_image_fails_clearly()
    {
        using var h1 = f.Engine(1);
        using var cts = new CancellationTokenSource(Quick);
        var target = $"{f.Registry.Host}/edgeeru/other:1";
        await h1.TagAsync(DockerRig.Image, target, cts.Token);
        try
        {
            var ex = await Assert.ThrowsAsync<ImageTransferException>(() => h1.PushAsync(target, "alice:wrong", null, cts.Token));
            Assert.Equal(ImageTransferFailure.Unauthorized, ex.Failure);
            Assert.Equal($"push {target}: the registry {f.Registry.Host} refused the credentials of user \"alice\" " +
                "(unauthorized: authentication required)", ex.Message);
            ex = await Assert.ThrowsAsync<ImageTransferException>(() => h1.PushAsync(target, null, null, cts.Token));
            Assert.Equal(ImageTransferFailure.CredentialsMissing, ex.Failure);
            Assert.StartsWith($"push {target}: the registry {f.Registry.Host} needs credentials and none were given", ex.Message);
        }
        finally
        {
            await h1.RemoveImageAsync(target, CancellationToken.None);
        }
        var absent = $"{f.Registry.Host}/edgeeru/absent:1";
        var missing = await Assert.ThrowsAsync<ImageTransferException>(() => h1.PushAsync(absent, f.Registry.Auth, null, cts.Token));
        Assert.Equal(ImageTransferFailure.NotFound, missing.Failure);
        Assert.StartsWith($"push {absent}: the engine has no image {absent} to push", missing.Message);
    }

    [Fact]
    public async Task A_pull_that_breaks_after_layers_came_in_leaves_no_image_and_no_layer()
    {
        // A two-layer image (busybox + 3 MB of noise), pushed, whose top layer then rots in the registry: the
        // pull downloads and starts registering the base layer, then fails the top one's digest check in the
        // middle of the JSON stream (dockerd has answered 200 by then).
        using var h1 = f.Engine(1);
        using var cts = new CancellationTokenSource(Quick);
        var image = $"{f.Registry.Host}/edgeeru/layered:1";
        var builder = await h1.CreateAndStartAsync(new ContainerSpec
        {
            Name = "layered_" + Guid.NewGuid().ToString("N")[..6], Image = DockerRig.Image,
            Command = ["sh", "-c", "busybox head -c 3000000 /dev/urandom > /noise"],
        }, cts.Token);
        await f.Rig.Hosts[0].DockerAsync(["wait", builder]);
        await f.Rig.Hosts[0].DockerAsync(["commit", builder, image]);
        await h1.RemoveAsync(builder, TimeSpan.Zero, cts.Token);
        await h1.PushAsync(image, f.Registry.Auth, null, cts.Token);

        using var http = f.Registry.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("v2/edgeeru/layered/manifests/1", UriKind.Relative));
        request.Headers.Accept.ParseAdd("application/vnd.docker.distribution.manifest.v2+json");
        using var response = await http.SendAsync(request, cts.Token);
        using var manifest = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cts.Token));
        var layers = manifest.RootElement.GetProperty("layers").EnumerateArray()
            .Select(l => l.GetProperty("digest").GetString()!).ToList();
        Assert.Equal(2, layers.Count);
        var top = layers[^1]["sha256:".Length..];
        var blob = Path.Combine(f.Registry.StorageDir, "docker/registry/v2/blobs/sha256", top[..2], top, "data");
        File.WriteAllBytes(blob, System.Security.Cryptography.RandomNumberGenerator.GetBytes((int)new FileInfo(blob).Length));

        using var h2 = f.Engine(2);
        await h2.RemoveImageAsync(f.Pushed, cts.Token); // host 2 then lacks the base layer too: a partial pull could leave it
        var ex = await FailedPullAsync(image, f.Registry.Auth);
        Assert.Equal(ImageTransferFailure.Other, ex.Failure);
        Assert.Equal($"pull {image}: the registry {f.Registry.Host} sent a layer whose content does not match its digest " +
            $"(filesystem layer verification failed for digest {layers[^1]})", ex.Message);
    }

    /// <summary>
    /// Pulls on host 2, which must fail, and checks that it left nothing: the same images (dangling ones
    /// included) and the same layer store size as before, and no image under that name.
    /// </summary>
    private async Task<ImageTransferException> FailedPullAsync(string image, string? auth)
    {
        using var h2 = f.Engine(2);
        using var cts = new CancellationTokenSource(Quick);
        await h2.RemoveImageAsync(image, cts.Token);
        var before = await StoreAsync();
        var ex = await Assert.ThrowsAsync<ImageTransferException>(() => h2.EnsureImageAsync(image, auth, cts.Token));
        Assert.False(await h2.ImageExistsAsync(image, cts.Token));
        Assert.Equal(before, await StoreAsync());
        return ex;
    }

    /// <summary>Host 2's images (all, with dangling ones) and its layer store's size (`docker system df`).</summary>
    private async Task<string> StoreAsync()
    {
        var host = f.Rig.Hosts[1];
        var images = await host.DockerAsync(["images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
        var df = await host.DockerAsync(["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}"]);
        return images.Trim() + "\n" + df.Split('\n').Single(l => l.StartsWith("Images ", StringComparison.Ordinal));
    }

    private async Task<string> ImageIdAsync(int host, string image) =>
        (await f.Rig.Hosts[host - 1].DockerAsync(["image", "inspect", "--format", "{{.Id}}", image])).Trim();
}

/// <summary>How references split and how dockerd's texts for cases the rig cannot stage read (no engine needed).</summary>
public sealed class ImageRegistryMessageTests
{
    [Theory]
    [InlineData("busybox", "docker.io", "busybox", "latest")]
    [InlineData("library/busybox:1.36", "docker.io", "library/busybox", "1.36")]
    [InlineData("localhost/app:2", "localhost", "localhost/app", "2")]
    [InlineData("198.18.63.254:5000/edgeeru/busybox:1", "198.18.63.254:5000", "198.18.63.254:5000/edgeeru/busybox", "1")]
    [InlineData("reg.example:5000/app", "reg.example:5000", "reg.example:5000/app", "latest")]
    public void A_reference_splits_into_registry_name_and_tag(string image, string registry, string name, string tag) =>
        Assert.Equal(new ImageReference(registry, name, tag), ImageReference.Parse(image));

    [Fact]
    public void Docker_Hub_refusing_an_anonymous_pull_asks_for_credentials_and_a_token_is_not_a_password()
    {
        var hub = ImageTransferErrors.Explain("pull", "acme/private:1", null,
            "pull access denied for acme/private, repository does not exist or may require 'docker login': denied: " +
            "requested access to the resource is denied", false, null);
        Assert.Equal(ImageTransferFailure.CredentialsMissing, hub.Failure);
        Assert.StartsWith("pull acme/private:1: the registry docker.io refused access without credentials (", hub.Message);
        Assert.EndsWith("if the image is private, add them with `eru registry-auth add docker.io --user USER --password-stdin`",
            hub.Message);

        var token = ImageTransferErrors.Explain("pull", "10.0.0.1:5000/a:1", "tok",
            "Head \"https://10.0.0.1:5000/v2/a/manifests/1\": no basic auth credentials", false, null);
        Assert.Equal(ImageTransferFailure.CredentialsMissing, token.Failure);
        Assert.StartsWith("pull 10.0.0.1:5000/a:1: the registry 10.0.0.1:5000 needs a user and password, not an identity token " +
            "(no basic auth credentials): add them with", token.Message);
        var refused = ImageTransferErrors.Explain("push", "10.0.0.1:5000/a:1", "tok", "unauthorized: authentication required",
            false, null);
        Assert.Equal("push 10.0.0.1:5000/a:1: the registry 10.0.0.1:5000 refused the identity token " +
            "(unauthorized: authentication required)", refused.Message);
    }

    [Fact]
    public void A_registry_nobody_listens_on_is_unreachable()
    {
        var ex = ImageTransferErrors.Explain("pull", "198.18.63.254:1/a:1", "u:p",
            "Get \"https://198.18.63.254:1/v2/\": dial tcp 198.18.63.254:1: connect: connection refused", false, null);
        Assert.Equal(ImageTransferFailure.Unreachable, ex.Failure);
        Assert.Equal("pull 198.18.63.254:1/a:1: the engine cannot reach the registry 198.18.63.254:1 " +
            "(dial tcp 198.18.63.254:1: connect: connection refused)", ex.Message);
    }
}
