using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EdgeEru.Lb.Routing;
using EdgeEru.Registry;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Serialization;
using EdgeEru.Registry.Store;
using EdgeEru.Registry.Watch;

namespace EdgeEru.Lb.Admin;

/// <summary>
/// The admin API, on a port of its own, every request with <c>Authorization: Bearer {token}</c>:
/// domains (list, get, set with validation, delete), explain, and live stats.
/// </summary>
internal static class AdminApi
{
    public static void Map(IEndpointRouteBuilder e, string token)
    {
        var expected = Encoding.UTF8.GetBytes("Bearer " + token);
        var api = e.MapGroup("/api").AddEndpointFilter(async (ctx, next) =>
        {
            var given = Encoding.UTF8.GetBytes(ctx.HttpContext.Request.Headers.Authorization.ToString());
            if (!CryptographicOperations.FixedTimeEquals(given, expected))
                return Results.Json(new { error = "admin API: missing or wrong bearer token" },
                    statusCode: StatusCodes.Status401Unauthorized);
            return await next(ctx);
        });

        api.MapGet("/domains", (RoutesHolder routes) =>
            Results.Json(routes.Current.Snapshot.LbDomains.Keys.Order(StringComparer.Ordinal)));

        api.MapGet("/domains/{name}", (string name, RoutesHolder routes) =>
            routes.Current.Snapshot.LbDomains.TryGetValue(name, out var d)
                ? Results.Text(JsonSerializer.Serialize(d, RegistryJsonContext.Default.LbDomain), "application/json")
                : Results.Json(new { error = $"no domain {name}" }, statusCode: 404));

        api.MapPut("/domains/{name}", async (string name, HttpRequest request, RegistryStore store, RoutesHolder routes) =>
        {
            LbDomain? domain;
            try
            {
                domain = await JsonSerializer.DeserializeAsync(request.Body, RegistryJsonContext.Default.LbDomain);
            }
            catch (JsonException ex)
            {
                return Results.Json(new { error = $"graph is not valid JSON: {ex.Message}" }, statusCode: 400);
            }
            if (domain is null) return Results.Json(new { error = "graph is empty" }, statusCode: 400);
            domain = domain with { Name = name };
            var problems = domain.Validate();
            if (problems.Count > 0) return Results.Json(new { error = "graph refused", problems }, statusCode: 400);
            var revision = await store.PutAsync(Kinds.LbDomains, domain);
            return Results.Json(new { domain = name, revision });
        });

        api.MapDelete("/domains/{name}", async (string name, RegistryStore store) =>
            await store.DeleteAsync(Kinds.LbDomains, name)
                ? Results.Json(new { deleted = name })
                : Results.Json(new { error = $"no domain {name}" }, statusCode: 404));

        // TLS certificates in the registry (lb/certs): parsed here before they are stored, keys never returned.
        // Each with its issuer and, for ACME ones, when it is next ordered (and why the last order failed);
        // domains that ask for ACME and have no certificate yet are listed too.
        api.MapGet("/certificates", async (Tls.TlsCertificates tls, RegistryWatcher watcher, RegistryStore store, CancellationToken ct) =>
        {
            IReadOnlyList<LbAcmeOrderState> orders;
            try
            {
                orders = [.. (await store.ListAsync(Kinds.LbAcmeOrders, ct: ct)).Items.Select(v => v.Value)];
            }
            catch (Grpc.Core.RpcException)
            {
                orders = []; // etcd away: what is loaded is still worth showing
            }
            return Results.Json(CertificateListing.Of(tls.Current.Certificates, watcher.Current, orders), JsonOptions);
        });

        api.MapPut("/certificates/{name}", async (string name, HttpRequest request, RegistryStore store) =>
        {
            CertificateRequest? ask;
            try
            {
                ask = await JsonSerializer.DeserializeAsync<CertificateRequest>(request.Body, JsonOptions);
            }
            catch (JsonException ex)
            {
                return Results.Json(new { error = $"certificate is not valid JSON: {ex.Message}" }, statusCode: 400);
            }
            if (ask?.Certificate is null || ask.Key is null)
                return Results.Json(new { error = "certificate needs \"certificate\" and \"key\" (PEM)" }, statusCode: 400);
            var record = new LbCertificate { Name = name, Certificate = ask.Certificate, Key = ask.Key };
            if (record.Validate() is { Count: > 0 } problems)
                return Results.Json(new { error = "certificate refused", problems }, statusCode: 400);
            Tls.LoadedCertificate loaded;
            try
            {
                loaded = Tls.CertificateStore.Load(name, ask.Certificate, ask.Key);
            }
            catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                return Results.Json(new { error = $"certificate {name} does not load: {ex.Message}" }, statusCode: 400);
            }
            var revision = await store.PutAsync(Kinds.LbCertificates, record);
            return Results.Json(new { certificate = name, names = loaded.Names, not_after = loaded.NotAfter, revision }, JsonOptions);
        });

        api.MapDelete("/certificates/{name}", async (string name, RegistryStore store) =>
            await store.DeleteAsync(Kinds.LbCertificates, name)
                ? Results.Json(new { deleted = name })
                : Results.Json(new { error = $"no certificate {name}" }, statusCode: 404));

        api.MapPost("/explain", async (HttpRequest request, RoutesHolder routes) =>
        {
            ExplainRequest? ask;
            try
            {
                ask = await JsonSerializer.DeserializeAsync<ExplainRequest>(request.Body, JsonOptions);
            }
            catch (JsonException ex)
            {
                return Results.Json(new { error = $"explain request is not valid JSON: {ex.Message}" }, statusCode: 400);
            }
            if (ask?.Host is null) return Results.Json(new { error = "explain needs at least a host" }, statusCode: 400);
            return Explain(routes.Current, ask);
        });

        api.MapGet("/dashboard", (RoutesHolder routes) => Results.Json(Dashboard.Model(routes.Current), JsonOptions));
        Dashboard.MapPage(e);

        api.MapGet("/stats", (RoutesHolder routes) =>
        {
            var current = routes.Current;
            return Results.Json(new
            {
                revision = current.Snapshot.Revision,
                domains = current.Graphs.Select(g => new
                {
                    domain = g.Domain.Name,
                    nodes = g.Hits().Select(h => new { node = h.Id, hits = h.Hits }),
                    backends = g.Terminals.OfType<BackendTerminal>().Select(t => new
                    {
                        node = t.Id,
                        destinations = current.Pools(g, t).Main.Destinations.Select(Describe),
                    }),
                }),
            }, JsonOptions);
        });
    }

    internal static readonly JsonSerializerOptions JsonOptions =
        new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Why a request would go where it goes: the walk, the terminal, and the live workloads behind it.</summary>
    private static IResult Explain(Routes routes, ExplainRequest ask)
    {
        var graph = routes.Find(ask.Host!);
        if (graph is null)
            return Results.Json(new { host = ask.Host, error = "no domain serves this host (the LB answers 404)" }, JsonOptions,
                statusCode: 404);
        var trace = new List<(string Node, bool? Matched)>();
        var decision = graph.Evaluate(new ExplainFacts(ask), trace);
        var node = decision.Terminal.Node;
        object? backend = null;
        if (decision.Terminal is BackendTerminal terminal)
        {
            var pools = routes.Pools(graph, terminal);
            backend = new
            {
                select = node.Select,
                groups = pools.Groups.Select(g => new { weight = g.Weight, live = g.Pool.Destinations.Select(Describe) }),
                live = pools.Main.Destinations.Select(Describe),
                fallback = pools.Fallback?.Destinations.Select(Describe),
                datacenters = pools.Datacenters.Length == 0
                    ? null
                    : pools.Datacenters.Select(d => new { datacenter = d.Datacenter, live = d.Pool.Destinations.Select(Describe) }),
                note = pools.Main.IsEmpty && pools.Groups.Length == 0
                    ? pools.Fallback is { IsEmpty: false }
                        ? "no live workload for the selection: the fallback serves"
                        : "no live workload: the LB answers 503"
                    : null,
            };
        }
        return Results.Json(new
        {
            domain = graph.Domain.Name,
            path = trace.Select(t => new { node = t.Node, matched = t.Matched }),
            terminal = new
            {
                node = decision.Terminal.Id,
                type = node.Type,
                status = node.Status == 0 ? (int?)null : node.Status,
                location = node.Location,
            },
            rewritten_path = decision.RewrittenPath,
            backend,
        }, JsonOptions);
    }

    private static object Describe(Backends.Destination d) => new
    {
        workload = d.WorkloadId,
        address = d.Address,
        port = d.Port,
        in_flight = d.InFlight,
        ejected = d.IsEjected,
        fails_check = d.FailsCheck,
    };
}

/// <summary>A certificate to store: PEM chain (leaf first) and PEM private key.</summary>
internal sealed class CertificateRequest
{
    public string? Certificate { get; set; }
    public string? Key { get; set; }
}

/// <summary>A request to explain, as JSON: host, method, path, headers, query, cookies, client_ip.</summary>
internal sealed class ExplainRequest
{
    public string? Host { get; set; }
    public string Method { get; set; } = "GET";
    public string Path { get; set; } = "/";
    public Dictionary<string, string> Headers { get; set; } = [];
    public Dictionary<string, string> Query { get; set; } = [];
    public Dictionary<string, string> Cookies { get; set; } = [];
    public string ClientIp { get; set; } = "127.0.0.1";
}

internal sealed class ExplainFacts(ExplainRequest r) : IRequestFacts
{
    private readonly Dictionary<string, string> _headers = new(r.Headers, StringComparer.OrdinalIgnoreCase);

    public string Method => r.Method;
    public string Path => r.Path;
    public string? Header(string name) => _headers.GetValueOrDefault(name);
    public string? Query(string name) => r.Query.GetValueOrDefault(name);
    public string? Cookie(string name) => r.Cookies.GetValueOrDefault(name);
    public System.Net.IPAddress ClientAddress(IReadOnlyList<System.Net.IPNetwork> trustedProxies) =>
        System.Net.IPAddress.TryParse(r.ClientIp, out var ip) ? ip : System.Net.IPAddress.Loopback;
}
