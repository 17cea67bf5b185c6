using System.Net;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// One LB domain (<c>lb/domains/{domain}</c>): a rule graph walked from <see cref="Init"/> through filter
/// nodes (each with a <c>succ</c> and a <c>fail</c> edge) to a terminal node: a backend, a redirect or a
/// fixed response. Validated as a whole before it is stored: every problem names its node.
/// </summary>
public sealed record LbDomain : IRegistryRecord
{
    public int V { get; set; } = 1;

    /// <summary>Host name, exact or with one leading wildcard label (<c>*.example.com</c>).</summary>
    public required string Name { get; init; }

    public required string Init { get; init; }

    public Dictionary<string, LbNode> Nodes { get; set; } = []; // settable: see LbBackendOptions

    /// <summary>Proxies whose X-Forwarded-For is believed for the client address (CIDRs).</summary>
    public string[]? TrustedProxies { get; init; }

    /// <summary>Ask for a certificate by ACME (HTTP-01 answered by eru-lb); absent: certificates come from lb/certs alone.</summary>
    public LbAcme? Acme { get; init; }

    [JsonIgnore] public string KeyName => Name;

    public IReadOnlyList<string> Validate()
    {
        var e = new List<string>();
        Names.Require(e, Names.IsDomain(Name), $"domain \"{Name}\" must be a host name, optionally \"*.\" and a host name");
        foreach (var p in TrustedProxies ?? [])
            Names.Require(e, IPNetwork.TryParse(p, out _), $"domain {Name}: trusted proxy \"{p}\" is not a CIDR network");
        if (Acme is not null)
        {
            foreach (var problem in Acme.Problems()) e.Add($"domain {Name}: {problem}");
            Names.Require(e, !Name.StartsWith("*.", StringComparison.Ordinal),
                $"domain {Name}: acme needs an exact host name (HTTP-01 cannot validate a wildcard)");
            Names.Require(e, Name.Length <= 248,
                $"domain {Name}: acme needs a name of at most 248 characters (its certificate is acme-{{name}})");
        }
        if (!Nodes.ContainsKey(Init))
        {
            e.Add($"domain {Name}: init node \"{Init}\" does not exist");
            return e;
        }
        foreach (var (id, node) in Nodes)
        {
            Names.Require(e, id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'),
                $"node \"{id}\": node names are 1-64 of [A-Za-z0-9._-]");
            foreach (var problem in node.Problems()) e.Add($"node \"{id}\": {problem}");
            if (node.IsFilter)
            {
                foreach (var (edge, target) in (ReadOnlySpan<(string, string?)>)[("succ", node.Succ), ("fail", node.Fail)])
                {
                    if (target is null) e.Add($"node \"{id}\": a {node.Type} filter needs a \"{edge}\" edge");
                    else if (!Nodes.ContainsKey(target)) e.Add($"node \"{id}\": {edge} \"{target}\" does not exist");
                }
            }
            else if (node.Succ is not null || node.Fail is not null)
                e.Add($"node \"{id}\": a {node.Type} node ends the walk and has no edges");
        }
        if (e.Count == 0) FindCycle(e);
        return e;
    }

    /// <summary>A walk must end: any cycle is refused, named by the node where it closes.</summary>
    private void FindCycle(List<string> e)
    {
        var state = new Dictionary<string, int>(); // 1 visiting, 2 done
        bool Visit(string id)
        {
            state[id] = 1;
            var node = Nodes[id];
            foreach (var next in (ReadOnlySpan<string?>)[node.Succ, node.Fail])
            {
                if (next is null) continue;
                var s = state.GetValueOrDefault(next);
                if (s == 1)
                {
                    e.Add($"node \"{id}\": edge to \"{next}\" closes a cycle");
                    return false;
                }
                if (s == 0 && !Visit(next)) return false;
            }
            state[id] = 2;
            return true;
        }
        foreach (var id in Nodes.Keys)
            if (state.GetValueOrDefault(id) == 0 && !Visit(id)) return;
    }
}

/// <summary>A node of a rule graph. One shape for every type; <see cref="Type"/> says which fields count.</summary>
public sealed record LbNode
{
    public static readonly string[] FilterTypes = ["path", "method", "header", "query", "cookie", "ua", "ip", "percent"];
    public static readonly string[] TerminalTypes = ["backend", "redirect", "respond"];
    public static readonly string[] MatchKinds = ["exact", "prefix", "regex", "present", "absent"];

    [JsonConverter(typeof(PooledStringConverter))] public required string Type { get; init; }

    public string? Succ { get; init; }
    public string? Fail { get; init; }

    /// <summary>Header, query parameter or cookie name.</summary>
    public string? Name { get; init; }

    /// <summary>exact, prefix, regex, present, absent (path: exact, prefix, regex).</summary>
    public string? Match { get; init; }

    public string? Value { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool IgnoreCase { get; init; }

    /// <summary>method: the methods that match.</summary>
    public string[]? Values { get; init; }

    /// <summary>path: rewrite the path (a template with $1.. from a regex match).</summary>
    public string? Rewrite { get; init; }

    /// <summary>path: remove the matched prefix.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool StripPrefix { get; init; }

    /// <summary>ip: client networks that match.</summary>
    public string[]? Cidrs { get; init; }

    /// <summary>percent: what keeps a user on one side: "cookie:NAME", "header:NAME" or "ip".</summary>
    public string? Key { get; init; }

    /// <summary>percent: share of users sent to succ (0-100).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public int Percent { get; init; }

    /// <summary>backend: which live workloads, and optional weighted groups and a fallback.</summary>
    public LbSelector? Select { get; init; }
    public LbGroup[]? Groups { get; init; }
    public LbSelector? Fallback { get; init; }
    public LbBackendOptions? Options { get; init; }

    /// <summary>redirect/respond: the status code.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public int Status { get; init; }

    /// <summary>redirect: where to (a template: {scheme}, {host}, {path}, {query}).</summary>
    public string? Location { get; init; }

    /// <summary>respond: the body and its content type.</summary>
    public string? Body { get; init; }
    public string? ContentType { get; init; }

    [JsonIgnore] public bool IsFilter => FilterTypes.Contains(Type);

    internal IEnumerable<string> Problems()
    {
        switch (Type)
        {
            case "path":
                if (Match is not ("exact" or "prefix" or "regex")) yield return $"path match \"{Match}\" must be exact, prefix or regex";
                if (string.IsNullOrEmpty(Value)) yield return "path needs a value";
                else if (Match == "regex" && RegexProblem(Value) is { } p) yield return p;
                else if (Match != "regex" && Value[0] != '/') yield return $"path \"{Value}\" must start with /";
                if (StripPrefix && Match != "prefix") yield return "strip_prefix needs a prefix match";
                break;
            case "method":
                if (Values is not { Length: > 0 }) yield return "method needs values";
                foreach (var m in Values ?? [])
                    if (m.Length == 0 || !m.All(char.IsAsciiLetterUpper)) yield return $"method \"{m}\" must be upper-case letters";
                break;
            case "header" or "query" or "cookie":
                if (string.IsNullOrEmpty(Name)) yield return $"{Type} needs a name";
                if (!MatchKinds.Contains(Match)) yield return $"{Type} match \"{Match}\" must be one of {string.Join(", ", MatchKinds)}";
                else if (Match is not ("present" or "absent") && Value is null) yield return $"{Type} match {Match} needs a value";
                else if (Match == "regex" && RegexProblem(Value!) is { } p) yield return p;
                break;
            case "ua":
                if (string.IsNullOrEmpty(Value)) yield return "ua needs a regex value";
                else if (RegexProblem(Value) is { } p) yield return p;
                break;
            case "ip":
                if (Cidrs is not { Length: > 0 }) yield return "ip needs cidrs";
                foreach (var c in Cidrs ?? [])
                    if (!IPNetwork.TryParse(c, out _)) yield return $"\"{c}\" is not a CIDR network";
                break;
            case "percent":
                if (Percent is < 0 or > 100) yield return $"percent {Percent} is outside 0-100";
                if (Key is not ("ip" or null)
                    && !(Key.StartsWith("cookie:", StringComparison.Ordinal) || Key.StartsWith("header:", StringComparison.Ordinal))
                    || Key is "cookie:" or "header:")
                    yield return $"percent key \"{Key}\" must be cookie:NAME, header:NAME or ip";
                break;
            case "backend":
                if (Select is null) yield return "backend needs select (app, entrypoint, port)";
                else foreach (var p in Select.Problems(requireService: true)) yield return p;
                foreach (var g in Groups ?? [])
                {
                    if (g.Weight <= 0) yield return $"group weight {g.Weight} must be positive";
                    foreach (var p in g.Problems()) yield return "group: " + p;
                }
                if (Fallback is not null)
                    foreach (var p in Fallback.Problems(requireService: false)) yield return "fallback: " + p;
                if (Options is not null)
                    foreach (var p in Options.Problems()) yield return p;
                break;
            case "redirect":
                if (Status is not (301 or 302 or 303 or 307 or 308))
                    yield return $"redirect status {Status} must be 301, 302, 303, 307 or 308";
                if (string.IsNullOrEmpty(Location)) yield return "redirect needs a location";
                else if (!HeaderText.IsValue(Location)) yield return "redirect location holds a control character";
                break;
            case "respond":
                if (Status is < 200 or > 599) yield return $"respond status {Status} is outside 200-599";
                if (ContentType is not null && !HeaderText.IsValue(ContentType))
                    yield return "respond content_type holds a control character";
                if (Status is 204 or 304 && !string.IsNullOrEmpty(Body))
                    yield return $"respond status {Status} has no body (HTTP), but a body is set";
                break;
            default:
                yield return $"type \"{Type}\" must be one of {string.Join(", ", FilterTypes.Concat(TerminalTypes))}";
                break;
        }
    }

    private static string? RegexProblem(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100));
            return null;
        }
        catch (ArgumentException ex)
        {
            return $"regex \"{pattern}\" is invalid: {ex.Message}";
        }
    }
}

/// <summary>Which live workloads a backend sends to: a service's port, narrowed by tags (all of) and labels.</summary>
public sealed record LbSelector
{
    public string? App { get; init; }
    public string? Entrypoint { get; init; }

    /// <summary>Name of the published port to send to.</summary>
    public string? Port { get; init; }

    public string[]? Tags { get; init; }
    public Dictionary<string, string>? Labels { get; init; }

    /// <summary>
    /// Which address of a workload to send to: "ipv4", "ipv6", or "any" (null: the IPv4 address when the workload has
    /// one, else its IPv6 one). A fallback without one takes the backend's.
    /// </summary>
    public string? Family { get; init; }

    public static readonly string[] Families = ["any", "ipv4", "ipv6"];

    /// <summary>
    /// Where the workloads may be, in failover order (docs/multi-dc.md): "local" (this datacenter), a datacenter's name,
    /// or "any" (every other datacenter the balancer follows, in its Registry:Datacenters order). Requests go to the first
    /// entry with a live destination that is not ejected. Null: ["local"]. On a backend's select only.
    /// </summary>
    public string[]? Datacenters { get; init; }

    public const string LocalDatacenter = "local", AnyDatacenter = "any";

    internal IEnumerable<string> Problems(bool requireService)
    {
        if (Family is not null && !Families.Contains(Family))
            yield return $"family \"{Family}\" must be ipv4, ipv6 or any";
        if (Datacenters is not null)
        {
            if (!requireService) yield return "datacenters belongs on the backend's select, not its fallback";
            if (Datacenters.Length == 0) yield return "datacenters is empty (leave it out for the local one only)";
            foreach (var dc in Datacenters)
                if (!Names.IsLabel(dc)) yield return $"datacenters: \"{dc}\" must be local, any or a datacenter's name";
            foreach (var twice in Datacenters.GroupBy(d => d).Where(g => g.Count() > 1))
                yield return $"datacenters: {twice.Key} is listed twice";
        }
        if (requireService || App is not null || Entrypoint is not null || Port is not null)
        {
            if (!Names.IsLabel(App)) yield return $"app \"{App}\" must be a DNS label";
            if (!Names.IsLabel(Entrypoint)) yield return $"entrypoint \"{Entrypoint}\" must be a DNS label";
            if (!Names.IsLabel(Port)) yield return $"port \"{Port}\" must name a published port";
        }
        foreach (var t in Tags ?? [])
            if (!Names.IsLabel(t)) yield return $"tag \"{t}\" must be a DNS label";
    }
}

/// <summary>A weighted share of a backend's traffic: the backend's selector narrowed further.</summary>
public sealed record LbGroup
{
    public int Weight { get; init; }
    public string[]? Tags { get; init; }
    public Dictionary<string, string>? Labels { get; init; }

    internal IEnumerable<string> Problems()
    {
        foreach (var t in Tags ?? [])
            if (!Names.IsLabel(t)) yield return $"tag \"{t}\" must be a DNS label";
    }
}

/// <remarks>
/// Settable, not init-only: the source-generated reader drops the initializers of init-only properties
/// when a field is missing (dotnet/runtime#84484), and hand-written values leave most fields out. Every
/// registry record follows this rule (CodecTests checks each kind).
/// </remarks>
public sealed record LbBackendOptions
{
    public int TimeoutMs { get; set; } = 30_000;

    /// <summary>Retries of idempotent requests that failed to connect.</summary>
    public int Retries { get; set; } = 1;

    /// <summary>"cookie" keeps a client on one workload; null: none.</summary>
    public string? Affinity { get; set; }

    /// <summary>"p2c" (power of two choices, default), "round_robin" or "least_requests".</summary>
    public string Policy { get; set; } = "p2c";

    public Dictionary<string, string> SetRequestHeaders { get; set; } = [];
    public string[] RemoveRequestHeaders { get; set; } = [];
    public Dictionary<string, string> SetResponseHeaders { get; set; } = [];
    public long MaxBodyBytes { get; set; }

    /// <summary>How the LB talks to the workloads: "http1" (default) or "h2c" (HTTP/2 without TLS, e.g. gRPC servers).</summary>
    public string? Protocol { get; set; }

    /// <summary>Optional active health check by the LB itself, on top of the agent's liveness and passive ejection.</summary>
    public LbActiveCheck? HealthCheck { get; set; }

    internal IEnumerable<string> Problems()
    {
        if (Protocol is not (null or "http1" or "h2c")) yield return $"protocol \"{Protocol}\" must be http1 or h2c";
        if (HealthCheck is not null)
            foreach (var p in HealthCheck.Problems()) yield return "health_check: " + p;
        if (TimeoutMs is < 1 or > 3_600_000) yield return $"timeout_ms {TimeoutMs} is outside 1-3600000";
        if (Retries is < 0 or > 5) yield return $"retries {Retries} is outside 0-5";
        if (Affinity is not (null or "cookie")) yield return $"affinity \"{Affinity}\" must be cookie or absent";
        if (Policy is not ("p2c" or "round_robin" or "least_requests"))
            yield return $"policy \"{Policy}\" must be p2c, round_robin or least_requests";
        if (MaxBodyBytes < 0) yield return "max_body_bytes must not be negative";
        // Written into HTTP heads as they are: a CR or LF here would be a header (or a response) of its own.
        foreach (var (what, names) in new[]
                 { ("set_request_headers", SetRequestHeaders.Keys), ("set_response_headers", SetResponseHeaders.Keys) })
            foreach (var name in names.Where(n => !HeaderText.IsName(n))) yield return $"{what}: \"{name}\" is not a header name";
        foreach (var name in RemoveRequestHeaders.Where(n => !HeaderText.IsName(n)))
            yield return $"remove_request_headers: \"{name}\" is not a header name";
        foreach (var (what, headers) in new[] { ("set_request_headers", SetRequestHeaders), ("set_response_headers", SetResponseHeaders) })
            foreach (var (name, value) in headers.Where(h => !HeaderText.IsValue(h.Value)))
                yield return $"{what}: the value of {name} holds a control character";
    }
}

/// <summary>An LB-side HTTP check of each destination: GET <see cref="Path"/>, 2xx/3xx is up.</summary>
/// <remarks>Settable for the same reason as <see cref="LbBackendOptions"/>.</remarks>
public sealed record LbActiveCheck
{
    public string Path { get; set; } = "/healthz";
    public int IntervalMs { get; set; } = 2000;
    public int TimeoutMs { get; set; } = 1000;

    /// <summary>Consecutive failures that take a destination out, and successes that bring it back.</summary>
    public int UnhealthyAfter { get; set; } = 2;
    public int HealthyAfter { get; set; } = 1;

    internal IEnumerable<string> Problems()
    {
        if (string.IsNullOrEmpty(Path) || Path[0] != '/') yield return $"path \"{Path}\" must start with /";
        if (IntervalMs is < 100 or > 600_000) yield return $"interval_ms {IntervalMs} is outside 100-600000";
        if (TimeoutMs < 1 || TimeoutMs > IntervalMs) yield return $"timeout_ms {TimeoutMs} must be 1 to interval_ms";
        if (UnhealthyAfter is < 1 or > 10) yield return $"unhealthy_after {UnhealthyAfter} is outside 1-10";
        if (HealthyAfter is < 1 or > 10) yield return $"healthy_after {HealthyAfter} is outside 1-10";
    }
}

/// <summary>What may go into an HTTP head (RFC 9110 §5.1, §5.5): token names, values without control characters but tab.</summary>
internal static class HeaderText
{
    public static bool IsName(string name) =>
        name.Length > 0 && name.All(c => c < 0x7f && (char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c)));

    public static bool IsValue(string value) => value.All(c => c == '\t' || (c >= 0x20 && c != 0x7f));
}
