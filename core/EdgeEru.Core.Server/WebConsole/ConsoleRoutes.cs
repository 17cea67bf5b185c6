using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeEru.Core.Api;
using EdgeEru.Core.Deploy;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Core.Server.WebConsole;

/// <summary>
/// A console endpoint: its HTTP method and route, and the entry of <see cref="ScopeTable"/> it is checked (and audited)
/// under: a method of the service, or a console view. The route table below is the only place endpoints are made.
/// </summary>
public sealed record ConsoleRoute(string Verb, string Pattern, string Rule, bool IsView)
{
    /// <summary>The path the gate checks: the service's method, or the console view's.</summary>
    public string MethodPath => (IsView ? ScopeTable.ConsoleViewPath : ConsoleGate.ServicePath) + Rule;
}

/// <summary>The console's JSON API: thin over <see cref="CoreService"/>'s handlers, each through the same gate as the RPCs.</summary>
internal static class ConsoleRoutes
{
    public const string Prefix = "/console/api";

    private static readonly JsonSerializerOptions Body = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    private delegate Task Handler(HttpContext http, ConsoleGate gate, ConsoleRoute route);

    private static readonly (ConsoleRoute Route, Handler Handler)[] Table =
    [
        (View("GET", "/whoami", "WhoAmI"), WhoAmI),
        (Service("GET", "/pods", "ListPods"), (h, g, r) => g.UnaryAsync(h, r.MethodPath, new V1.ListPodsRequest(),
            g.Service.ListPods, ConsoleGate.Json.Format)),
        (Service("GET", "/nodes", "ListNodes"), (h, g, r) => g.UnaryAsync(h, r.MethodPath, new V1.ListNodesRequest(),
            g.Service.ListNodes, ConsoleGate.Json.Format)),
        (Service("GET", "/workloads", "ListWorkloads"), ListWorkloads),
        (Service("GET", "/watch/workloads", "WatchWorkloads"), WatchWorkloads),
        (Service("GET", "/watch/nodes", "WatchNodes"), WatchNodes),
        (Service("GET", "/apps/{app}/logs", "Logs"), Logs),
        (View("GET", "/apps/{app}/history", "AppHistory"), History),
        (View("GET", "/apps/{app}/dns", "AppDnsNames"), DnsNames),
        (View("GET", "/lb/domains", "LbDomains"), LbDomains),
        (View("GET", "/ssh/sessions", "SshSessions"), SshSessions),
        (Service("POST", "/apps/{app}/deploy", "Deploy"), Deploy),
        (Service("POST", "/apps/{app}/replace", "Replace"), Replace),
        (Service("POST", "/workloads/control", "Control"), Control),
        (Service("POST", "/workloads/remove", "Remove"), Remove),
    ];

    public static IEnumerable<ConsoleRoute> Routes => Table.Select(t => t.Route);

    private static ConsoleRoute Service(string verb, string pattern, string method) => new(verb, Prefix + pattern, method, false);

    private static ConsoleRoute View(string verb, string pattern, string view) => new(verb, Prefix + pattern, view, true);

    /// <summary>Maps every route of the table (each endpoint carries its <see cref="ConsoleRoute"/> as metadata).</summary>
    public static void Map(IEndpointRouteBuilder endpoints)
    {
        var gate = new Lazy<ConsoleGate>(() => new ConsoleGate(endpoints.ServiceProvider)); // services once the host runs
        foreach (var (route, handler) in Table)
            endpoints.MapMethods(route.Pattern, [route.Verb], http => handler(http, gate.Value, route)).WithMetadata(route);
        // Anything else under the API is a 404 in JSON, not the page.
        endpoints.MapFallback(Prefix + "/{**rest}", http =>
            ConsoleGate.RefuseAsync(http, $"no console endpoint {http.Request.Method} {http.Request.Path}",
                StatusCodes.Status404NotFound));
    }

    /// <summary>Who the token is and what it may do (the page shows only the actions its scopes allow).</summary>
    private static Task WhoAmI(HttpContext http, ConsoleGate gate, ConsoleRoute route) =>
        gate.UnaryAsync(http, route.MethodPath, new Empty(), (_, c) => Task.FromResult(AuthInterceptor.CallerOf(c)),
            caller => JsonSerializer.Serialize(new { name = caller.Name, scopes = caller.Scopes }, ConsoleGate.Web));

    /// <summary>The query's app and entrypoint (empty: every one), each a DNS label when given; null after writing a 400.</summary>
    private static async Task<V1.ListWorkloadsRequest?> FilterAsync(HttpContext http)
    {
        var filter = new V1.ListWorkloadsRequest
        {
            App = http.Request.Query["app"].ToString(), Entrypoint = http.Request.Query["entrypoint"].ToString(),
        };
        foreach (var (name, value) in new[] { ("app", filter.App), ("entrypoint", filter.Entrypoint) })
        {
            if (value.Length == 0 || Names.IsLabel(value)) continue;
            await ConsoleGate.RefuseAsync(http, $"{name} \"{value}\" must be a DNS label (a-z 0-9 -, at most 63)");
            return null;
        }
        return filter;
    }

    private static async Task ListWorkloads(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await FilterAsync(http) is { } filter)
            await gate.UnaryAsync(http, route.MethodPath, filter, gate.Service.ListWorkloads, ConsoleGate.Json.Format);
    }

    /// <summary>A watch's <c>since</c> (a synced revision the page saw), or null after writing a 400.</summary>
    private static async Task<long?> SinceAsync(HttpContext http)
    {
        var since = http.Request.Query["since"];
        if (since.Count == 0) return 0;
        if (long.TryParse(since, System.Globalization.CultureInfo.InvariantCulture, out var revision) && revision >= 0) return revision;
        await ConsoleGate.RefuseAsync(http, $"since \"{since}\" must be a registry revision (a whole number, 0 or more)");
        return null;
    }

    private static async Task WatchWorkloads(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await FilterAsync(http) is not { } filter || await SinceAsync(http) is not { } since) return;
        await gate.EventsAsync<V1.WatchWorkloadsRequest, V1.WorkloadEvent>(http, route.MethodPath,
            new V1.WatchWorkloadsRequest { Filter = filter, SinceRevision = since }, gate.Service.WatchWorkloads);
    }

    private static async Task WatchNodes(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await SinceAsync(http) is not { } since) return;
        await gate.EventsAsync<V1.WatchNodesRequest, V1.NodeEvent>(http, route.MethodPath,
            new V1.WatchNodesRequest { SinceRevision = since }, gate.Service.WatchNodes);
    }

    /// <summary>The app named in the route, when it is a DNS label (else a 400 is written and null returned).</summary>
    private static async Task<string?> AppAsync(HttpContext http)
    {
        var app = http.Request.RouteValues["app"] as string ?? "";
        if (Names.IsLabel(app)) return app;
        await ConsoleGate.RefuseAsync(http, $"app \"{app}\" must be a DNS label (a-z 0-9 -, at most 63)");
        return null;
    }

    /// <summary>
    /// The registry as the service reads it (caught up: a client reads its own writes); NOT_FOUND for an app with no
    /// workload (checked once the caller is let in: no probing app names).
    /// </summary>
    private static async Task<RegistrySnapshot> SnapshotAsync(ConsoleGate gate, HttpContext http, string? knownApp = null)
    {
        var snapshot = await gate.Service.CaughtUpAsync(http.RequestAborted);
        if (knownApp is not null && !snapshot.Workloads.Any(w => w.Record?.App == knownApp))
            throw new RpcException(new Status(StatusCode.NotFound, $"no app {knownApp}: no workload of it is recorded"));
        return snapshot;
    }

    private static async Task Logs(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await AppAsync(http) is not { } app) return;
        var q = http.Request.Query;
        var tail = 100;
        if (q["tail"].Count > 0 && (!int.TryParse(q["tail"], System.Globalization.CultureInfo.InvariantCulture, out tail) || tail < 0))
        {
            await ConsoleGate.RefuseAsync(http, $"tail \"{q["tail"]}\" must be a whole number, 0 or more");
            return;
        }
        var request = new V1.LogsRequest { App = app, Entrypoint = q["entrypoint"].ToString(), Tail = tail, Follow = q["follow"] == "1" };
        await gate.EventsAsync<V1.LogsRequest, V1.LogEvent>(http, route.MethodPath, request, gate.Service.Logs,
            () => SnapshotAsync(gate, http, app));
    }

    private static async Task History(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await AppAsync(http) is not { } app) return;
        await gate.UnaryAsync(http, route.MethodPath, new Empty(), async (_, _) =>
        {
            var sources = gate.Sources;
            var entries = sources.AuditLog is null ? [] : ConsoleViews.History(ConsoleViews.ReadLines(sources.AuditLog), app);
            if (entries.Count == 0) await SnapshotAsync(gate, http, app);
            return new { entries, note = sources.AuditLog is null ? "eru-core has no Core:AuditLog" : null };
        }, v => JsonSerializer.Serialize(v, ConsoleGate.Web));
    }

    private static async Task DnsNames(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await AppAsync(http) is not { } app) return;
        await gate.UnaryAsync(http, route.MethodPath, new Empty(), async (_, _) =>
        {
            var snapshot = await SnapshotAsync(gate, http, app);
            return new { zone = gate.Sources.DnsZone, names = ConsoleViews.DnsNames(snapshot, app, gate.Sources.DnsZone) };
        }, v => JsonSerializer.Serialize(v, ConsoleGate.Web));
    }

    private static async Task LbDomains(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await FilterAsync(http) is not { } filter) return;
        await gate.UnaryAsync(http, route.MethodPath, new Empty(), async (_, _) =>
            ConsoleViews.LbDomains(await SnapshotAsync(gate, http), filter.App.Length > 0 ? filter.App : null),
            v => JsonSerializer.Serialize(v, ConsoleGate.Web));
    }

    private static async Task SshSessions(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await FilterAsync(http) is not { } filter) return;
        await gate.UnaryAsync(http, route.MethodPath, new Empty(), async (_, _) =>
        {
            var path = gate.Sources.SshAuditLog;
            var sessions = path is null ? []
                : ConsoleViews.SshSessions(ConsoleViews.ReadLines(path), filter.App.Length > 0 ? filter.App : null,
                    await SnapshotAsync(gate, http));
            return new { sessions, note = path is null ? "eru-core has no Core:SshAuditLog (eru-ssh's Ssh:AuditLog)" : null };
        }, v => JsonSerializer.Serialize(v, ConsoleGate.Web));
    }

    /// <summary>A deploy or replace from the console: an app spec (YAML, as <c>eru deploy</c> takes it) and its options.</summary>
    public sealed record SpecBody(
        string? Spec, string? Entrypoint, string? Pod, int? Count, string? Network, string[]? Tags, string[]? Env, long? MemoryBytes,
        double? Cpu, int? BatchSize);

    public sealed record WorkloadsBody(string[]? Workloads, string? Action);

    private static async Task<T?> ReadAsync<T>(HttpContext http) where T : class
    {
        if (http.Request.ContentLength is > 1 << 20)
        {
            await ConsoleGate.RefuseAsync(http, "the body is over 1 MiB", StatusCodes.Status413PayloadTooLarge);
            return null;
        }
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(http.Request.Body, Body, http.RequestAborted)
                ?? throw new JsonException("the body is null");
        }
        catch (JsonException ex)
        {
            await ConsoleGate.RefuseAsync(http, $"the body is not the JSON this call takes: {ex.Message}");
            return null;
        }
    }

    /// <summary>The deploy request of a spec body, or the problem with it in words (which field, what is wrong).</summary>
    public static (V1.DeployRequest? Request, string? Problem) DeployRequest(string app, SpecBody body)
    {
        if (string.IsNullOrWhiteSpace(body.Spec)) return (null, "spec: the app spec (YAML, as eru deploy takes it) is missing");
        AppSpec spec;
        try
        {
            spec = AppSpec.Parse(body.Spec);
        }
        catch (FormatException ex)
        {
            return (null, $"spec: {ex.Message}");
        }
        if (spec.Appname != app) return (null, $"spec: appname \"{spec.Appname}\" is not the app of this URL ({app})");
        var entrypoint = body.Entrypoint ?? (spec.Entrypoints.Count == 1 ? spec.Entrypoints.Keys.Single() : null);
        if (string.IsNullOrEmpty(entrypoint))
            return (null, $"entrypoint: name one of {string.Join(", ", spec.Entrypoints.Keys.Order(StringComparer.Ordinal))}");
        if (body.Count is not { } count || count is < 1 or > 100)
            return (null, $"count must be 1-100, got {body.Count?.ToString() ?? "none"}");
        if (string.IsNullOrEmpty(body.Pod)) return (null, "pod: name the pod to deploy into");
        if (body.MemoryBytes is < 0) return (null, $"memoryBytes {body.MemoryBytes} must not be negative");
        if (body.Cpu is < 0) return (null, $"cpu {body.Cpu} must not be negative");
        try
        {
            var options = new DeploySpec
            {
                App = app, Entrypoint = entrypoint, Image = "", Pod = body.Pod, Count = count, Tags = body.Tags ?? [], Env = body.Env ?? [],
                Networks = string.IsNullOrEmpty(body.Network) ? [] : new Dictionary<string, string> { [body.Network] = "" },
                MemoryRequest = body.MemoryBytes ?? 0, MemoryLimit = body.MemoryBytes ?? 0, Cpu = body.Cpu ?? 0,
            };
            return (SpecMapping.ToRequest(spec.ToDeploySpec(entrypoint, options)), null);
        }
        catch (FormatException ex)
        {
            return (null, $"spec: {ex.Message}");
        }
    }

    private static async Task Deploy(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await AppAsync(http) is not { } app || await ReadAsync<SpecBody>(http) is not { } body) return;
        var (request, problem) = DeployRequest(app, body);
        if (request is null) await ConsoleGate.RefuseAsync(http, problem!);
        else await gate.CollectedAsync<V1.DeployRequest, V1.DeployEvent>(http, route.MethodPath, request, gate.Service.Deploy);
    }

    private static async Task Replace(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await AppAsync(http) is not { } app || await ReadAsync<SpecBody>(http) is not { } body) return;
        var (request, problem) = DeployRequest(app, body with { Count = body.Count ?? 1 });
        if (body.BatchSize is < 1 or > 100) problem ??= $"batchSize must be 1-100, got {body.BatchSize}";
        if (request is null || problem is not null)
        {
            await ConsoleGate.RefuseAsync(http, problem!);
            return;
        }
        await gate.CollectedAsync<V1.ReplaceRequest, V1.DeployEvent>(http, route.MethodPath,
            new V1.ReplaceRequest { Request = request, BatchSize = body.BatchSize ?? 1 }, gate.Service.Replace);
    }

    /// <summary>The workloads of a body: at least one, each an id, id prefix or name (the service resolves them).</summary>
    private static async Task<string[]?> WorkloadsAsync(HttpContext http, WorkloadsBody body)
    {
        if (body.Workloads is { Length: > 0 } list && list.All(w => w is { Length: > 0 and <= 128 })) return list;
        await ConsoleGate.RefuseAsync(http, "workloads: name at least one workload (id, id prefix or name)");
        return null;
    }

    private static async Task Control(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await ReadAsync<WorkloadsBody>(http) is not { } body || await WorkloadsAsync(http, body) is not { } workloads) return;
        V1.ControlAction? action = body.Action switch
        {
            "start" => V1.ControlAction.Start, "stop" => V1.ControlAction.Stop, "restart" => V1.ControlAction.Restart, _ => null,
        };
        if (action is null)
        {
            await ConsoleGate.RefuseAsync(http, $"action \"{body.Action}\" must be start, stop or restart");
            return;
        }
        var request = new V1.ControlRequest { Action = action.Value };
        request.Workloads.Add(workloads);
        await gate.CollectedAsync<V1.ControlRequest, V1.InstanceResult>(http, route.MethodPath, request, gate.Service.Control);
    }

    private static async Task Remove(HttpContext http, ConsoleGate gate, ConsoleRoute route)
    {
        if (await ReadAsync<WorkloadsBody>(http) is not { } body || await WorkloadsAsync(http, body) is not { } workloads) return;
        if (body.Action is not null)
        {
            await ConsoleGate.RefuseAsync(http, "action: remove takes none");
            return;
        }
        var request = new V1.RemoveRequest();
        request.Workloads.Add(workloads);
        await gate.CollectedAsync<V1.RemoveRequest, V1.InstanceResult>(http, route.MethodPath, request, gate.Service.Remove);
    }
}
