using System.IO.Pipelines;
using EdgeEru.Core.Deploy;
using EdgeEru.Core.Secrets;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>Jobs, files in and out, secrets and registry credentials.</summary>
public sealed partial class CoreService
{
    private const int ChunkBytes = 64 * 1024;

    public override async Task Run(V1.RunRequest request, IServerStreamWriter<V1.RunEvent> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        var spec = Checked(request.Request is null ? null : request.Request.Clone() is var r && r.Count == 0 ? WithCount(r) : r);
        if (request.TimeoutS < 0) throw Refuse(StatusCode.InvalidArgument, $"timeout_s {request.TimeoutS} must not be negative");
        var run = new RunSpec { Spec = spec, Timeout = TimeSpan.FromSeconds(request.TimeoutS), Keep = request.Keep };
        var result = await deployer.RunAsync(run,
            o => responseStream.WriteAsync(o.Stderr ? new V1.RunEvent { Stderr = ByteString.CopyFrom(o.Bytes.Span) }
                : new V1.RunEvent { Stdout = ByteString.CopyFrom(o.Bytes.Span) }, ct),
            i => responseStream.WriteAsync(new V1.RunEvent { Started = ApiMapping.ToResult(i) }, ct), ct);
        if (result.Refused != RefusalKind.None) throw Refused(ApiMapping.Refused(result.Refused, result.Error!));
        Instances.WithLabels(result.ExitCode == 0 ? "job_succeeded" : "job_failed").Inc();
        await responseStream.WriteAsync(new V1.RunEvent
        {
            Exited = new V1.Exited
            {
                ExitCode = result.ExitCode, TimedOut = result.TimedOut, Removed = result.Removed, Error = result.Error ?? "",
            },
        }, ct);
    }

    private static V1.DeployRequest WithCount(V1.DeployRequest r)
    {
        r.Count = 1;
        return r;
    }

    public override async Task CopyFrom(
        V1.CopyFromRequest request, IServerStreamWriter<V1.CopyChunk> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        var id = (await ResolveAsync([request.Workload], ct)).Single();
        (Docker.ContainerPathInfo Info, Stream Tar, IDisposable Engine) archive;
        try
        {
            archive = await deployer.CopyFromAsync(id, request.Path, ct);
        }
        catch (ArgumentException ex)
        {
            throw Refuse(StatusCode.InvalidArgument, ex.Message);
        }
        catch (FileNotFoundException ex)
        {
            throw Refuse(StatusCode.NotFound, $"{request.Workload}: {ex.Message}");
        }
        using (archive.Engine)
        await using (archive.Tar)
        {
            var buffer = new byte[ChunkBytes];
            var first = true;
            int n;
            while ((n = await archive.Tar.ReadAsync(buffer, ct)) > 0)
            {
                var chunk = new V1.CopyChunk { Data = ByteString.CopyFrom(buffer, 0, n) };
                if (first) (chunk.IsDirectory, chunk.Size, first) = (archive.Info.IsDirectory, archive.Info.Size, false);
                await responseStream.WriteAsync(chunk, ct);
            }
        }
        log.LogInformation("copied {Path} out of {Workload}", request.Path, request.Workload);
    }

    public override async Task<V1.CopyToReply> CopyTo(IAsyncStreamReader<V1.CopyToRequest> requestStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct))
            throw Refuse(StatusCode.InvalidArgument, "the first message must name the workload and the path");
        var head = requestStream.Current;
        var id = (await ResolveAsync([head.Workload], ct)).Single();
        var pipe = new Pipe();
        var feed = Task.Run(async () =>
        {
            try
            {
                if (head.Data.Length > 0) await pipe.Writer.WriteAsync(head.Data.Memory, ct);
                while (await requestStream.MoveNext(ct)) await pipe.Writer.WriteAsync(requestStream.Current.Data.Memory, ct);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex);
            }
        }, ct);
        try
        {
            await deployer.CopyToAsync(id, head.Path, pipe.Reader.AsStream(), ct);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidDataException)
        {
            throw Refuse(StatusCode.InvalidArgument, ex.Message);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw Refuse(StatusCode.NotFound, $"{head.Workload}: {ex.Message}");
        }
        catch (global::Docker.DotNet.DockerApiException ex)
        {
            throw Refuse(StatusCode.FailedPrecondition, $"{head.Workload}: the engine refused the copy: {ex.ResponseBody.Trim()}");
        }
        finally
        {
            await pipe.Reader.CompleteAsync();
            await feed;
        }
        log.LogInformation("copied files into {Path} of {Workload}", head.Path, head.Workload);
        return new V1.CopyToReply();
    }

    public override async Task<V1.SecretInfo> SetSecret(V1.SetSecretRequest request, ServerCallContext context)
    {
        var info = await SecretCallAsync(() => secrets.SetAsync(request.Name, request.Content.ToByteArray(), context.CancellationToken));
        log.LogInformation("secret {Name} set ({Size} bytes)", info.Name, info.Size);
        return ToInfo(info);
    }

    public override async Task<V1.ListSecretsReply> ListSecrets(V1.ListSecretsRequest request, ServerCallContext context)
    {
        var reply = new V1.ListSecretsReply();
        reply.Secrets.Add((await SecretCallAsync(() => secrets.ListAsync(context.CancellationToken))).Select(ToInfo));
        return reply;
    }

    public override async Task<V1.RemoveSecretReply> RemoveSecret(V1.RemoveSecretRequest request, ServerCallContext context)
    {
        if (!await SecretCallAsync(() => secrets.RemoveAsync(request.Name, request.Force, context.CancellationToken)))
            throw Refuse(StatusCode.NotFound, $"secret {request.Name} does not exist");
        log.LogInformation("secret {Name} removed", request.Name);
        return new V1.RemoveSecretReply();
    }

    public override async Task<V1.RegistryAuthInfo> SetRegistryAuth(V1.SetRegistryAuthRequest request, ServerCallContext context)
    {
        var info = await SecretCallAsync(() =>
            secrets.SetRegistryAuthAsync(request.Host, request.User, request.Password, context.CancellationToken));
        log.LogInformation("registry credentials for {Host} set (user {User})", info.Host, info.User);
        return new V1.RegistryAuthInfo { Host = info.Host, User = info.User, UpdatedAt = info.UpdatedAt.ToString("O") };
    }

    public override async Task<V1.ListRegistryAuthReply> ListRegistryAuth(V1.ListRegistryAuthRequest request, ServerCallContext context)
    {
        var reply = new V1.ListRegistryAuthReply();
        reply.Entries.Add((await SecretCallAsync(() => secrets.ListRegistryAuthAsync(context.CancellationToken)))
            .Select(a => new V1.RegistryAuthInfo { Host = a.Host, User = a.User, UpdatedAt = a.UpdatedAt.ToString("O") }));
        return reply;
    }

    public override async Task<V1.RemoveRegistryAuthReply> RemoveRegistryAuth(
        V1.RemoveRegistryAuthRequest request, ServerCallContext context)
    {
        if (!await SecretCallAsync(() => secrets.RemoveRegistryAuthAsync(request.Host, context.CancellationToken)))
            throw Refuse(StatusCode.NotFound, $"no registry credentials for {request.Host}");
        log.LogInformation("registry credentials for {Host} removed", request.Host);
        return new V1.RemoveRegistryAuthReply();
    }

    /// <summary>Maps the secret store's refusals to statuses; the message never holds a secret's content.</summary>
    private static async Task<T> SecretCallAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (ArgumentException ex)
        {
            throw Refuse(StatusCode.InvalidArgument, ex.Message);
        }
        catch (InvalidOperationException ex)
        {
            throw Refuse(StatusCode.FailedPrecondition, ex.Message);
        }
    }

    private static V1.SecretInfo ToInfo(SecretInfo s)
    {
        var v = new V1.SecretInfo
        {
            Name = s.Name, Size = s.Size, CreatedAt = s.CreatedAt.ToString("O"), UpdatedAt = s.UpdatedAt.ToString("O"),
        };
        v.UsedBy.Add(s.UsedBy);
        return v;
    }
}
