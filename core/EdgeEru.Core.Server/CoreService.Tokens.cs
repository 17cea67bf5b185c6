using EdgeEru.Registry.Model;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>API tokens (admin only, as the scope table says): made, listed without their secret, revoked.</summary>
public sealed partial class CoreService
{
    public override async Task<V1.CreatedToken> CreateToken(V1.CreateTokenRequest request, ServerCallContext context)
    {
        if (request.TtlSeconds < 0) throw Refuse(StatusCode.InvalidArgument, $"ttl_seconds {request.TtlSeconds} must not be negative");
        var caller = AuthInterceptor.CallerOf(context);
        (ApiToken Token, string Secret)? made;
        try
        {
            made = await tokens.CreateAsync(request.Name, [.. request.Scopes],
                request.TtlSeconds > 0 ? TimeSpan.FromSeconds(request.TtlSeconds) : null, caller.Name, context.CancellationToken);
        }
        catch (ArgumentException ex)
        {
            throw Refuse(StatusCode.InvalidArgument, ex.Message);
        }
        if (made is not { } m) throw Refuse(StatusCode.AlreadyExists, $"token {request.Name} exists already (eru token rm it first)");
        log.LogInformation("token {Name} created by {Caller} with scopes {Scopes}",
            m.Token.Name, caller.Name, string.Join(",", m.Token.Scopes));
        return new V1.CreatedToken { Info = ToInfo(m.Token), Token = m.Secret };
    }

    public override async Task<V1.ListTokensReply> ListTokens(V1.ListTokensRequest request, ServerCallContext context)
    {
        var reply = new V1.ListTokensReply();
        reply.Tokens.Add((await tokens.ListAsync(context.CancellationToken)).Select(ToInfo));
        return reply;
    }

    public override async Task<V1.RevokeTokenReply> RevokeToken(V1.RevokeTokenRequest request, ServerCallContext context)
    {
        bool removed;
        try
        {
            removed = await tokens.RevokeAsync(request.Name, context.CancellationToken);
        }
        catch (ArgumentException ex)
        {
            throw Refuse(StatusCode.InvalidArgument, ex.Message);
        }
        if (!removed) throw Refuse(StatusCode.NotFound, $"token {request.Name} does not exist");
        log.LogInformation("token {Name} revoked by {Caller}", request.Name, AuthInterceptor.CallerOf(context).Name);
        return new V1.RevokeTokenReply();
    }

    private V1.TokenInfo ToInfo(ApiToken t)
    {
        var v = new V1.TokenInfo
        {
            Name = t.Name, CreatedAt = t.CreatedAt.ToString("O"), ExpiresAt = t.ExpiresAt?.ToString("O") ?? "", CreatedBy = t.CreatedBy,
            Expired = tokens.IsExpired(t),
        };
        v.Scopes.Add(t.Scopes);
        return v;
    }
}
