using System.CommandLine;
using System.IO.Pipelines;
using EdgeEru.Core.Files;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru build</c>: a directory as the build context, streamed to eru-core, built on a node, pushed.</summary>
internal static class BuildCommand
{
    private const int ChunkBytes = 64 * 1024;

    public static Command Create()
    {
        var api = new CoreApi();
        var dir = new Argument<string>("dir") { Description = "The build context: a directory (its .dockerignore is honoured)" };
        var tags = new Option<string[]>("--tag", "-t")
        {
            Description = "Name of the result, [HOST[:PORT]/]REPOSITORY[:TAG], repeatable", Required = true,
        };
        var pod = new Option<string?>("--pod") { Description = "Build on this pod's first alive, schedulable node (by name)" };
        var node = new Option<string?>("--node") { Description = "Build on this node" };
        var file = new Option<string?>("--file", "-f") { Description = "The Dockerfile (default: DIR/Dockerfile)" };
        var buildArgs = new Option<string[]>("--build-arg") { Description = "NAME=VALUE for an ARG of the Dockerfile, repeatable" };
        var network = new Option<string?>("--network")
        {
            Description = "Network of RUN steps: none, host, or a Docker network (default: the engine's)",
        };
        var push = new Option<bool>("--push")
        {
            Description = "Push every tag (default: the tags of registries eru-core has credentials for)",
        };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not use cached layers" };
        var build = new Command("build", "Build an image from DIR on a node's Docker engine through eru-core, streaming its output, " +
            "then push its tags; exits 1 naming the failing step when the build fails")
        {
            dir, tags, pod, node, file, buildArgs, network, push, noCache,
        };
        build.SetAction((pr, ct) => api.RunAsync(pr, "build", async (c, t) =>
        {
            var context = pr.GetValue(dir)!;
            if (!Directory.Exists(context)) throw new DirectoryNotFoundException($"no directory {context}");
            var (dockerfile, outside) = BuildContext.LocateDockerfile(context, pr.GetValue(file));
            var options = new V1.BuildOptions
            {
                Pod = pr.GetValue(pod) ?? "", Node = pr.GetValue(node) ?? "", Dockerfile = dockerfile,
                Network = pr.GetValue(network) ?? "", Push = pr.GetValue(push), NoCache = pr.GetValue(noCache),
            };
            options.Tags.Add(pr.GetValue(tags)!);
            options.BuildArgs.Add(CliText.Pairs(pr.GetValue(buildArgs), "--build-arg", valueOptional: true));
            return await BuildAsync(c, options, context, outside, pr.GetValue(api.Json), t);
        }, ct));
        api.AddTo(build);
        return build;
    }

    private static async Task<int> BuildAsync(V1.Core.CoreClient client, V1.BuildOptions options, string dir, string? outside, bool json,
        CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var call = client.Build(cancellationToken: stop.Token);
        await call.RequestStream.WriteAsync(new V1.BuildRequest { Options = options }, ct);
        var printed = 0;
        var receive = Task.Run(async () =>
        {
            await foreach (var e in call.ResponseStream.ReadAllAsync(stop.Token))
            {
                if (json)
                {
                    Console.WriteLine(JsonFormatter.Default.Format(e));
                    continue;
                }
                switch (e.EventCase)
                {
                    case V1.BuildEvent.EventOneofCase.Log:
                        Console.WriteLine(e.Log);
                        printed++;
                        break;
                    case V1.BuildEvent.EventOneofCase.Pushed:
                        Console.WriteLine($"pushed {e.Pushed.Tag} ({e.Pushed.Digest})");
                        break;
                    case V1.BuildEvent.EventOneofCase.Result:
                        Console.WriteLine($"built {e.Result.ImageId} on {e.Result.Node} as {string.Join(", ", e.Result.Tags)}");
                        return 0;
                }
            }
            return await CliText.Fail("build", "eru-core ended the call without the build's result", 1);
        }, CancellationToken.None);

        try
        {
            await SendContextAsync(call.RequestStream, dir, options.Dockerfile, outside, stop.Token);
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException || receive.IsCompleted)
        {
            // eru-core ended the call before taking the whole context (a refusal, a failed build): its answer says why.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stop.CancelAsync();
            await Task.WhenAny(receive);
            return await CliText.Fail("build", $"reading the context {dir}: {ex.Message}", 2);
        }
        try
        {
            return await receive;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.FailedPrecondition && printed > 0)
        {
            // The output's last lines were printed as they came: the first line says which step failed and why.
            return await CliText.Fail("build", ex.Status.Detail.Split('\n')[0], 1);
        }
    }

    /// <summary>Tars the directory into a pipe and sends it in chunks as it is written: the context is never held whole.</summary>
    private static async Task SendContextAsync(IClientStreamWriter<V1.BuildRequest> requests, string dir, string dockerfile,
        string? outside, CancellationToken ct)
    {
        var pipe = new Pipe();
        var pack = Task.Run(async () =>
        {
            try
            {
                await using var output = pipe.Writer.AsStream(leaveOpen: true);
                await BuildContext.WriteAsync(dir, dockerfile, outside, output, ct);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
                throw;
            }
        }, ct);
        var buffer = new byte[ChunkBytes];
        await using (var tar = pipe.Reader.AsStream())
        {
            int n;
            while ((n = await tar.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct)) > 0)
                await requests.WriteAsync(new V1.BuildRequest { Context = ByteString.CopyFrom(buffer, 0, n) }, ct);
        }
        await pack;
        await requests.CompleteAsync();
    }
}
