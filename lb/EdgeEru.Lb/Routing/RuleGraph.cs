using System.Net;
using System.Text.RegularExpressions;
using EdgeEru.Lb.Backends;
using EdgeEru.Registry.Model;

namespace EdgeEru.Lb.Routing;

/// <summary>Where a walk through a graph ended, the path rewrite it picked up, and (when explaining) how it got there.</summary>
internal readonly record struct Decision(Terminal Terminal, string? RewrittenPath);

/// <summary>
/// A domain's rule graph compiled for the hot path: nodes in an array, edges as indexes, regexes
/// compiled once. Immutable; a new graph replaces the old one atomically and in-flight requests keep
/// the one they started with. Hit counts per node feed the dashboard and /metrics.
/// </summary>
internal sealed class RuleGraph
{
    private readonly Step[] _steps;
    private readonly int _init;
    private readonly long[] _hits;

    public RuleGraph(LbDomain domain)
    {
        var errors = domain.Validate();
        if (errors.Count > 0) throw new ArgumentException(string.Join("; ", errors), nameof(domain));
        Domain = domain;
        var ids = domain.Nodes.Keys.Order(StringComparer.Ordinal).ToArray();
        var index = ids.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i, StringComparer.Ordinal);
        _steps = ids.Select((id, i) => Step.Compile(id, i, domain.Nodes[id], index)).ToArray();
        _init = index[domain.Init];
        _hits = new long[_steps.Length];
        TrustedProxies = (domain.TrustedProxies ?? []).Select(ClientNetworks.Parse).ToArray();
        Terminals = _steps.Where(s => s.Terminal is not null).Select(s => s.Terminal!).ToArray();
        var backends = Terminals.OfType<BackendTerminal>().Select(t => t.Backend).ToArray();
        EveryBackendSpeaksHttp1 = backends.All(b => b.Protocol == UpstreamProtocol.Http1);
        SomeBackendKeepsAffinity = backends.Any(b => b.AffinityCookie is not null);
    }

    public LbDomain Domain { get; }
    public IReadOnlyList<IPNetwork> TrustedProxies { get; }
    public IReadOnlyList<Terminal> Terminals { get; }

    /// <summary>Every backend of the graph speaks HTTP/1.1 to its workloads (none asks for h2c).</summary>
    public bool EveryBackendSpeaksHttp1 { get; }

    /// <summary>Some backend of the graph keeps clients on one workload with a cookie.</summary>
    public bool SomeBackendKeepsAffinity { get; }

    /// <summary>Hit count of each node since this graph was compiled.</summary>
    public IEnumerable<(string Id, long Hits)> Hits() => _steps.Select(s => (s.Id, Interlocked.Read(ref _hits[s.Index])));

    /// <summary>Walks the graph for a request. <paramref name="trace"/>, when given, receives each node and its outcome.</summary>
    public Decision Evaluate<TRequest>(TRequest request, List<(string Node, bool? Matched)>? trace = null) where TRequest : IRequestFacts
    {
        string? rewritten = null;
        var i = _init;
        for (var guard = 0; guard <= _steps.Length; guard++)
        {
            var step = _steps[i];
            Interlocked.Increment(ref _hits[i]);
            if (step.Terminal is not null)
            {
                trace?.Add((step.Id, null));
                return new Decision(step.Terminal, rewritten);
            }
            var matched = step.Matches(request, TrustedProxies, ref rewritten);
            trace?.Add((step.Id, matched));
            i = matched ? step.Succ : step.Fail;
        }
        throw new InvalidOperationException("rule graph walk did not end"); // validation refuses cycles
    }

    /// <summary>What a filter node looks at, decided when the graph is compiled.</summary>
    private enum FilterKind { Path, Method, Header, Query, Cookie, UserAgent, Ip, Percent }

    /// <summary>How a filter compares what it looks at.</summary>
    private enum MatchKind { None, Exact, Prefix, Regex, Present, Absent }

    /// <summary>One compiled node.</summary>
    private sealed class Step
    {
        public required string Id { get; init; }
        public required int Index { get; init; }
        public Terminal? Terminal { get; init; }
        public int Succ { get; init; } = -1;
        public int Fail { get; init; } = -1;
        private FilterKind Kind { get; init; }
        private MatchKind Match { get; init; }
        private LbNode Node { get; init; } = null!;
        private Regex? Regex { get; init; }
        private IPNetwork[] Networks { get; init; } = [];
        private StringComparison Comparison { get; init; }

        public static Step Compile(string id, int i, LbNode node, Dictionary<string, int> index)
        {
            if (!node.IsFilter) return new Step { Id = id, Index = i, Terminal = Terminal.Compile(id, i, node), Node = node };
            var kind = node.Type switch
            {
                "path" => FilterKind.Path,
                "method" => FilterKind.Method,
                "header" => FilterKind.Header,
                "query" => FilterKind.Query,
                "cookie" => FilterKind.Cookie,
                "ua" => FilterKind.UserAgent,
                "ip" => FilterKind.Ip,
                "percent" => FilterKind.Percent,
                _ => throw new ArgumentException($"node \"{id}\": \"{node.Type}\" is not a filter type", nameof(node)),
            };
            var match = node.Match switch
            {
                "exact" => MatchKind.Exact,
                "prefix" => MatchKind.Prefix,
                "regex" => MatchKind.Regex,
                "present" => MatchKind.Present,
                "absent" => MatchKind.Absent,
                _ => MatchKind.None,
            };
            var options = RegexOptions.Compiled | RegexOptions.CultureInvariant
                | (node.IgnoreCase || kind == FilterKind.UserAgent ? RegexOptions.IgnoreCase : 0);
            return new Step
            {
                Id = id,
                Index = i,
                Kind = kind,
                Match = match,
                Node = node,
                Succ = index[node.Succ!],
                Fail = index[node.Fail!],
                Regex = match == MatchKind.Regex || kind == FilterKind.UserAgent
                    ? new Regex(node.Value!, options, TimeSpan.FromMilliseconds(50))
                    : null,
                Networks = (node.Cidrs ?? []).Select(ClientNetworks.Parse).ToArray(),
                Comparison = node.IgnoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal,
                // The percent key split once ("cookie:uid" → cookie, "uid"), not per request.
                KeyCookie = node.Key is { } k && k.StartsWith("cookie:", StringComparison.Ordinal) ? k[7..] : null,
                KeyHeader = node.Key is { } h && h.StartsWith("header:", StringComparison.Ordinal) ? h[7..] : null,
            };
        }

        private string? KeyCookie { get; init; }
        private string? KeyHeader { get; init; }

        public bool Matches<TRequest>(TRequest r, IReadOnlyList<IPNetwork> trusted, ref string? rewritten) where TRequest : IRequestFacts
        {
            switch (Kind)
            {
                case FilterKind.Path:
                {
                    var path = rewritten ?? r.Path;
                    switch (Match)
                    {
                        case MatchKind.Exact:
                            return string.Equals(path, Node.Value, Comparison);
                        case MatchKind.Prefix:
                            if (!path.StartsWith(Node.Value!, Comparison)) return false;
                            if (Node.StripPrefix) rewritten = "/" + path[Node.Value!.Length..].TrimStart('/');
                            else if (Node.Rewrite is not null) rewritten = Node.Rewrite + path[Node.Value!.Length..];
                            return true;
                        default:
                            var m = Regex!.Match(path);
                            if (!m.Success) return false;
                            if (Node.Rewrite is not null) rewritten = m.Result(Node.Rewrite);
                            return true;
                    }
                }
                case FilterKind.Method:
                    foreach (var v in Node.Values!)
                        if (string.Equals(v, r.Method, StringComparison.OrdinalIgnoreCase)) return true;
                    return false;
                case FilterKind.Header:
                    return Value(r.Header(Node.Name!));
                case FilterKind.Query:
                    return Value(r.Query(Node.Name!));
                case FilterKind.Cookie:
                    return Value(r.Cookie(Node.Name!));
                case FilterKind.UserAgent:
                    return r.Header("User-Agent") is { } ua && Regex!.IsMatch(ua);
                case FilterKind.Ip:
                    return ClientNetworks.Contains(Networks, r.ClientAddress(trusted));
                default:
                    return Bucket(r, trusted) < Node.Percent;
            }
        }

        private bool Value(string? actual) => Match switch
        {
            MatchKind.Present => actual is not null,
            MatchKind.Absent => actual is null,
            MatchKind.Exact => actual is not null && string.Equals(actual, Node.Value, Comparison),
            MatchKind.Prefix => actual is not null && actual.StartsWith(Node.Value!, Comparison),
            MatchKind.Regex => actual is not null && Regex!.IsMatch(actual),
            _ => false,
        };

        /// <summary>
        /// 0-99, stable for a user: a hash of the key (cookie, header or client address). Raising the
        /// percentage only moves users from fail to succ, never back: a user stays on the side they were.
        /// </summary>
        private int Bucket<TRequest>(TRequest r, IReadOnlyList<IPNetwork> trusted) where TRequest : IRequestFacts
        {
            var key = KeyCookie is not null ? r.Cookie(KeyCookie) : KeyHeader is not null ? r.Header(KeyHeader) : null;
            if (key is not null) return Hash(key);
            // No cookie yet: the client address keeps it stable (its text, formatted without a string per request).
            var client = r.ClientAddress(trusted);
            Span<char> text = stackalloc char[64];
            return client.TryFormat(text, out var written) ? Hash(text[..written]) : Hash(client.ToString());
        }

        private static int Hash(ReadOnlySpan<char> key)
        {
            uint h = 2166136261;
            foreach (var c in key)
            {
                h ^= c;
                h *= 16777619;
            }
            return (int)(h % 100);
        }
    }
}
