using EdgeEru.Registry;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>
/// Registry kinds that followers serve and operators write: SSH gateway users, static DNS records. Core writes them
/// so that the CLI needs only Core's API; the values are checked as the followers check them.
/// </summary>
public sealed partial class CoreService
{
    public override async Task<V1.ListSshUsersReply> ListSshUsers(V1.ListSshUsersRequest request, ServerCallContext context)
    {
        var reply = new V1.ListSshUsersReply();
        reply.Users.Add((await store.ListAsync(Kinds.SshUsers, ct: context.CancellationToken)).Items
            .OrderBy(u => u.Value.Name, StringComparer.Ordinal).Select(u => ApiMapping.FromSshUser(u.Value, u.ModRevision)));
        return reply;
    }

    public override async Task<V1.SshUser> PutSshUser(V1.PutSshUserRequest request, ServerCallContext context)
    {
        if (request.User is null) throw Refuse(StatusCode.InvalidArgument, "user is missing");
        var user = ApiMapping.ToSshUser(request.User);
        Require(user.Validate());
        Registry.Store.RegistryTransaction? committed = null;
        var refusal = await store.TransactAsync<RpcException?>(async (tx, ct) =>
        {
            committed = tx;
            var current = await tx.GetAsync(Kinds.SshUsers, user.Name, ct);
            if (request.CreateOnly && current is not null)
                return new RpcException(new Status(StatusCode.AlreadyExists, $"ssh user {user.Name} exists already"));
            // A read-modify-write (eru ssh-user key add, allow) must not undo another admin's change made meanwhile.
            if (request.IfRevision > 0 && current?.ModRevision != request.IfRevision)
                return new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"ssh user {user.Name} changed meanwhile (read it again)"));
            tx.Put(Kinds.SshUsers, user);
            return null;
        }, ct: context.CancellationToken);
        if (refusal is not null) throw Refused(refusal);
        log.LogInformation("ssh user {User} written by {Caller}: {Keys} key(s), apps {Apps}", user.Name,
            AuthInterceptor.CallerOf(context).Name, user.Keys.Length, string.Join(",", user.Apps.Keys));
        return ApiMapping.FromSshUser(user, committed!.CommitRevision);
    }

    public override async Task<V1.DeleteSshUserReply> DeleteSshUser(V1.DeleteSshUserRequest request, ServerCallContext context)
    {
        if (!await store.DeleteAsync(Kinds.SshUsers, request.Name, context.CancellationToken))
            throw Refuse(StatusCode.NotFound, $"no ssh user {request.Name}");
        log.LogInformation("ssh user {User} removed by {Caller}", request.Name, AuthInterceptor.CallerOf(context).Name);
        return new V1.DeleteSshUserReply();
    }

    public override async Task<V1.ListDnsRecordsReply> ListDnsRecords(V1.ListDnsRecordsRequest request, ServerCallContext context)
    {
        var reply = new V1.ListDnsRecordsReply();
        reply.Sets.Add((await store.ListAsync(Kinds.DnsRecords, ct: context.CancellationToken)).Items
            .OrderBy(d => d.Value.Name, StringComparer.Ordinal).Select(d => ApiMapping.FromDnsRecords(d.Value)));
        return reply;
    }

    public override async Task<V1.DnsRecordSet> PutDnsRecords(V1.PutDnsRecordsRequest request, ServerCallContext context)
    {
        if (request.Set is null) throw Refuse(StatusCode.InvalidArgument, "set is missing");
        var set = ApiMapping.ToDnsRecords(request.Set);
        Require(set.Validate());
        await store.PutAsync(Kinds.DnsRecords, set, ct: context.CancellationToken);
        log.LogInformation("dns records of {Name} written by {Caller}: {Count}", set.Name, AuthInterceptor.CallerOf(context).Name,
            set.Records.Length);
        return ApiMapping.FromDnsRecords(set);
    }

    public override async Task<V1.DeleteDnsRecordsReply> DeleteDnsRecords(V1.DeleteDnsRecordsRequest request, ServerCallContext context)
    {
        if (!await store.DeleteAsync(Kinds.DnsRecords, request.Name, context.CancellationToken))
            throw Refuse(StatusCode.NotFound, $"no dns records of {request.Name}");
        log.LogInformation("dns records of {Name} removed by {Caller}", request.Name, AuthInterceptor.CallerOf(context).Name);
        return new V1.DeleteDnsRecordsReply();
    }
}
