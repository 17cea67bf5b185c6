using System.IO.Pipelines;
using EdgeEru.Core.Deploy;
using Grpc.Core;
using Prometheus;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>Image builds: the context streamed from the caller to a node's engine, the output streamed back.</summary>
public sealed partial class CoreService
{
    private static readonly Counter Builds = Metrics.CreateCounter("eru_core_builds_total", "Image builds, by result", "result");

    public override async Task Build(IAsyncStreamReader<V1.BuildRequest> requestStream, IServerStreamWriter<V1.BuildEvent> responseStream,
        ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct) || requestStream.Current.PartCase != V1.BuildRequest.PartOneofCase.Options)
            throw Refuse(StatusCode.InvalidArgument, "options: the first message must carry the build's options; the context follows");
        var o = requestStream.Current.Options;
        var spec = new BuildSpec
        {
            Pod = o.Pod, Node = o.Node, Tags = [.. o.Tags], Dockerfile = o.Dockerfile, BuildArgs = o.BuildArgs.ToDictionary(),
            Network = o.Network, Push = o.Push, NoCache = o.NoCache,
        };
        Require(spec.Problems());

        // The context goes through a pipe as it arrives: never held whole (the pipe pauses the reading at 64 KiB).
        var pipe = new Pipe();
        var feed = Task.Run(async () =>
        {
            try
            {
                while (await requestStream.MoveNext(ct))
                {
                    if (requestStream.Current.PartCase != V1.BuildRequest.PartOneofCase.Context)
                        throw new InvalidDataException("only the first message carries options; the following ones carry the context");
                    // Completed: the build stopped reading (it failed, or was refused), the rest is not wanted.
                    if ((await pipe.Writer.WriteAsync(requestStream.Current.Context.Memory, ct)).IsCompleted) break;
                }
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
            }
        }, ct);
        BuildOutcome outcome;
        try
        {
            outcome = await deployer.BuildAsync(spec, pipe.Reader.AsStream(), e => responseStream.WriteAsync(ToEvent(e), ct), ct);
        }
        finally
        {
            await pipe.Reader.CompleteAsync();
            await feed;
        }
        if (outcome.Refused != RefusalKind.None)
        {
            Builds.WithLabels(outcome.FailedStep is null ? "refused" : "failed").Inc();
            var tail = outcome.OutputTail.Count > 0 ? "\nlast output lines:\n" + string.Join('\n', outcome.OutputTail) : "";
            throw Refused(ApiMapping.Refused(outcome.Refused, outcome.Error + tail));
        }
        Builds.WithLabels("built").Inc();
        log.LogInformation("built {Image} on {Node} as {Tags} ({Pushed} pushed)", outcome.ImageId, outcome.Node,
            string.Join(", ", outcome.Tags), outcome.Pushed.Count);
        var result = new V1.BuildResult { ImageId = outcome.ImageId, Node = outcome.Node, BuildId = outcome.BuildId };
        result.Tags.Add(outcome.Tags);
        await responseStream.WriteAsync(new V1.BuildEvent { Result = result }, ct);
    }

    private static V1.BuildEvent ToEvent(BuildProgress e) => e.Pushed is { } p
        ? new V1.BuildEvent { Pushed = new V1.PushedTag { Tag = p.Tag, Digest = p.Digest } }
        : new V1.BuildEvent { Log = e.Log ?? "" };
}
