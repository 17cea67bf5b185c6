using System.Collections.Frozen;
using EdgeEru.Registry.Model;
using Google.Protobuf;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server;

/// <summary>What a method of Core's API needs of its caller's token.</summary>
public enum Need
{
    /// <summary>Looks, changes nothing: <c>read</c>.</summary>
    Read,

    /// <summary>Acts on one app's workloads or images: <c>deploy:APP</c> for every app it touches.</summary>
    Deploy,

    /// <summary>The cluster itself (pods, nodes), secrets, registry credentials, tokens: <c>admin</c>.</summary>
    Admin,
}

/// <summary>A method's entry: what it needs, and whether it goes into the audit log (it changes something, or takes files out).</summary>
public sealed record MethodRule(Need Need, bool Audited);

/// <summary>
/// Every method of <c>edgeeru.core.v1.Core</c> and what it needs (pure). A method missing here is admin-only, and a
/// test fails for it (ScopeTableTests enumerates the service descriptor).
/// </summary>
public static class ScopeTable
{
    private static readonly MethodRule ReadOnly = new(Need.Read, false), DeployApp = new(Need.Deploy, true),
        AdminChange = new(Need.Admin, true), AdminRead = new(Need.Admin, false), DeployRead = new(Need.Deploy, false);

    public static FrozenDictionary<string, MethodRule> Methods { get; } = new Dictionary<string, MethodRule>(StringComparer.Ordinal)
    {
        ["AddPod"] = AdminChange, ["RemovePod"] = AdminChange, ["ListPods"] = ReadOnly,
        ["AddNode"] = AdminChange, ["RemoveNode"] = AdminChange, ["ListNodes"] = ReadOnly, ["SetNode"] = AdminChange,
        ["Capacity"] = ReadOnly, ["ListWorkloads"] = ReadOnly, ["WatchWorkloads"] = ReadOnly, ["WatchNodes"] = ReadOnly,
        // Public keys and static records are what the gateway and eru-dns serve anyway: read lists them.
        ["ListSshUsers"] = ReadOnly, ["PutSshUser"] = AdminChange, ["DeleteSshUser"] = AdminChange,
        ["ListDnsRecords"] = ReadOnly, ["PutDnsRecords"] = AdminChange, ["DeleteDnsRecords"] = AdminChange,
        ["Deploy"] = DeployApp, ["Replace"] = DeployApp, ["Realloc"] = DeployApp, ["Remove"] = DeployApp, ["Control"] = DeployApp,
        ["Run"] = DeployApp, ["CopyFrom"] = DeployApp, ["CopyTo"] = DeployApp, ["Build"] = DeployApp,
        // Container output carries what an app prints (as files CopyFrom takes out do): its app's deploy scope, not read.
        // A read, so not audited (a follow lasts as long as the operator watches).
        ["Logs"] = DeployRead,
        // Secret names and registry hosts say much about a deployment: listing them is admin's too.
        ["SetSecret"] = AdminChange, ["ListSecrets"] = AdminRead, ["RemoveSecret"] = AdminChange,
        ["SetRegistryAuth"] = AdminChange, ["ListRegistryAuth"] = AdminRead, ["RemoveRegistryAuth"] = AdminChange,
        ["CreateToken"] = AdminChange, ["ListTokens"] = AdminRead, ["RevokeToken"] = AdminChange,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>
    /// What the console shows beside the service's methods (its JSON endpoints over those use the methods' entries):
    /// checked by the same gate under <see cref="ConsoleViewPath"/>. A console endpoint names its entry here or in
    /// <see cref="Methods"/>, and a test fails for one that names neither (ConsoleRoutesTests).
    /// </summary>
    public static FrozenDictionary<string, MethodRule> ConsoleViews { get; } = new Dictionary<string, MethodRule>(StringComparer.Ordinal)
    {
        // Who the caller is and its scopes (the console shows only the actions they allow).
        ["WhoAmI"] = ReadOnly,
        // Core's audit log, an app's mutating calls: who deployed what, as names (the log holds no secret).
        ["AppHistory"] = ReadOnly,
        // What eru-dns and eru-lb serve anyway (names, domains and their rules).
        ["AppDnsNames"] = ReadOnly, ["LbDomains"] = ReadOnly,
        // The SSH gateway's audit: who ran which command inside which container, with key fingerprints: admin's.
        ["SshSessions"] = AdminRead,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The path a console view is checked under (its method name, in a service of its own).</summary>
    public const string ConsoleViewPath = "/edgeeru.core.v1.Console/";

    private static readonly MethodRule Unknown = new(Need.Admin, true);

    /// <summary>
    /// The rule of a gRPC method path (<c>/edgeeru.core.v1.Core/Deploy</c>) or a console view's
    /// (<c>/edgeeru.core.v1.Console/AppHistory</c>); unknown ones are admin's.
    /// </summary>
    public static MethodRule For(string methodPath) =>
        (methodPath.StartsWith(ConsoleViewPath, StringComparison.Ordinal) ? ConsoleViews : Methods)
            .GetValueOrDefault(MethodName(methodPath), Unknown);

    public static string MethodName(string methodPath) => methodPath[(methodPath.LastIndexOf('/') + 1)..];

    /// <summary>
    /// Null when <paramref name="scopes"/> allow a call that needs <paramref name="need"/> on <paramref name="apps"/>;
    /// else the scope that is missing, as the refusal names it.
    /// </summary>
    public static string? Missing(IReadOnlyCollection<string> scopes, Need need, IReadOnlyCollection<string> apps)
    {
        if (scopes.Contains(TokenScopes.Admin)) return null;
        switch (need)
        {
            case Need.Read:
                return scopes.Contains(TokenScopes.Read) ? null : TokenScopes.Read;
            case Need.Deploy:
                if (apps.Count == 0) return TokenScopes.DeployPrefix + "APP (the request names no app)";
                var missing = apps.FirstOrDefault(a => !scopes.Contains(TokenScopes.DeployPrefix + a));
                return missing is null ? null : TokenScopes.DeployPrefix + missing;
            default:
                return TokenScopes.Admin;
        }
    }

    /// <summary>Whether any deploy scope is there at all (else a deploy call is refused before its workloads are looked up).</summary>
    public static bool DeploysAny(IReadOnlyCollection<string> scopes) =>
        scopes.Any(s => s == TokenScopes.Admin || TokenScopes.DeployApp(s) is not null);
}

/// <summary>The apps and the target a request names, for scope checks and the audit log (pure).</summary>
public static class RequestApps
{
    /// <summary>
    /// The apps a request of a <see cref="Need.Deploy"/> method touches, its workload references resolved against
    /// <paramref name="workloads"/>; a reference that resolves to nothing is refused as the method would refuse it.
    /// </summary>
    public static (IReadOnlyList<string> Apps, WorkloadRefs.Refusal? Refusal) Of(IMessage? request, IReadOnlyCollection<Workload> workloads)
    {
        var (refs, byApp) = request switch
        {
            V1.RemoveRequest r => (r.Workloads, false),
            V1.ControlRequest r => (r.Workloads, false),
            V1.ReallocRequest r => (r.Workloads, true),
            V1.CopyFromRequest r => ([r.Workload], false),
            V1.CopyToRequest r => ([r.Workload], false),
            _ => ((IReadOnlyList<string>?)null, false),
        };
        if (refs is null) return (Named(request), null);
        var resolved = WorkloadRefs.Resolve([.. refs], workloads, byApp);
        return resolved.Refusal is not null ? ([], resolved.Refusal)
            : ([.. resolved.Workloads.Select(w => w.App).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)], null);
    }

    /// <summary>The apps a request names by itself (no lookup): a spec's app, a build's image names.</summary>
    public static IReadOnlyList<string> Named(IMessage? request) => request switch
    {
        V1.DeployRequest r => AppList(r.App),
        V1.ReplaceRequest r => AppList(r.Request?.App),
        V1.RunRequest r => AppList(r.Request?.App),
        V1.CapacityRequest r => AppList(r.Request?.App),
        V1.LogsRequest r => AppList(r.App),
        V1.BuildRequest { Options: { } o } => [.. o.Tags.Select(ImageApp).Distinct(StringComparer.Ordinal)],
        _ => [],
    };

    /// <summary>
    /// The app an image belongs to, for <c>deploy:APP</c>: the last part of its repository
    /// (<c>10.0.0.5:5000/team/hello:2</c> → hello).
    /// </summary>
    public static string ImageApp(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        var name = at < 0 ? image : image[..at];
        name = name[(name.LastIndexOf('/') + 1)..];
        var colon = name.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? name : name[..colon];
    }

    /// <summary>What a request acts on, for the audit log: names and references, never a secret's content or a password.</summary>
    public static string Target(IMessage? request) => request switch
    {
        V1.AddPodRequest r => r.Name,
        V1.RemovePodRequest r => r.Name,
        V1.AddNodeRequest r => r.Node?.Name ?? "",
        V1.RemoveNodeRequest r => r.Name,
        V1.SetNodeRequest r => r.Name,
        V1.DeployRequest r => Service(r),
        V1.ReplaceRequest r => Service(r.Request),
        V1.RunRequest r => Service(r.Request),
        V1.RemoveRequest r => string.Join(",", r.Workloads),
        V1.ControlRequest r => r.Action.ToString().ToLowerInvariant() + " " + string.Join(",", r.Workloads),
        V1.ReallocRequest r => string.Join(",", r.Workloads),
        V1.CopyFromRequest r => r.Workload + ":" + r.Path,
        V1.CopyToRequest r => r.Workload + ":" + r.Path,
        V1.BuildRequest { Options: { } o } => string.Join(",", o.Tags),
        V1.SetSecretRequest r => r.Name,
        V1.RemoveSecretRequest r => r.Name,
        V1.SetRegistryAuthRequest r => r.Host,
        V1.RemoveRegistryAuthRequest r => r.Host,
        V1.CreateTokenRequest r => r.Name + " " + string.Join(",", r.Scopes),
        V1.RevokeTokenRequest r => r.Name,
        V1.PutSshUserRequest r => r.User?.Name ?? "",
        V1.DeleteSshUserRequest r => r.Name,
        V1.PutDnsRecordsRequest r => r.Set?.Name ?? "",
        V1.DeleteDnsRecordsRequest r => r.Name,
        _ => "",
    };

    private static string Service(V1.DeployRequest? r) => r is null ? "" : r.Entrypoint.Length > 0 ? r.App + "." + r.Entrypoint : r.App;

    private static IReadOnlyList<string> AppList(string? app) => string.IsNullOrEmpty(app) ? [] : [app];
}

/// <summary>Workload references as calls take them: ids, unique id prefixes (6 or more), names; APP or APP.ENTRYPOINT (pure).</summary>
public static class WorkloadRefs
{
    public sealed record Refusal(StatusCode Code, string Message);

    /// <summary>
    /// The workloads <paramref name="refs"/> name, in order, each once; with <paramref name="byApp"/> also APP or
    /// APP.ENTRYPOINT for all of its instances. A reference that matches nothing is NOT_FOUND, an ambiguous prefix
    /// INVALID_ARGUMENT.
    /// </summary>
    public static (IReadOnlyList<Workload> Workloads, Refusal? Refusal) Resolve(
        IReadOnlyList<string> refs, IReadOnlyCollection<Workload> all, bool byApp)
    {
        if (refs.Count == 0) return ([], new Refusal(StatusCode.InvalidArgument, "workloads: name at least one workload"));
        var found = new List<Workload>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in refs)
        {
            var matches = all.Where(w => w.Id == r || w.Name == r).ToList();
            if (matches.Count == 0 && r.Length >= 6) matches = [.. all.Where(w => w.Id.StartsWith(r, StringComparison.Ordinal))];
            if (matches.Count == 0 && byApp)
            {
                var dot = r.IndexOf('.', StringComparison.Ordinal);
                var (app, entrypoint) = dot < 0 ? (r, null) : (r[..dot], r[(dot + 1)..]);
                var ofApp = all.Where(w => w.App == app && (entrypoint is null || w.Entrypoint == entrypoint))
                    .OrderBy(w => w.Name, StringComparer.Ordinal).ToList();
                if (ofApp.Count == 0) return ([], new Refusal(StatusCode.NotFound, $"no workload, app or app.entrypoint {r}"));
                found.AddRange(ofApp.Where(w => seen.Add(w.Id)));
                continue;
            }
            if (matches.Count == 0) return ([], new Refusal(StatusCode.NotFound, $"no workload {r}"));
            if (matches.Count > 1)
                return ([], new Refusal(StatusCode.InvalidArgument, $"{r} names {matches.Count} workloads; give more of the id"));
            if (seen.Add(matches[0].Id)) found.Add(matches[0]);
        }
        return (found, null);
    }
}
