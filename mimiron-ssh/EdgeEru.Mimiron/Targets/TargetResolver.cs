using System.Globalization;
using System.Text;
using EdgeEru.Registry.Model;
using EdgeEru.Registry.Snapshot;

namespace EdgeEru.Mimiron.Targets;

/// <summary>
/// A live container a session may enter: its record and the node whose Docker engine runs it; and when the login let
/// the gateway choose (no <c>#N</c>), the other live instances in order, for when this one cannot take the session.
/// </summary>
public sealed record ResolvedTarget(Workload Workload, Node Node)
{
    public IReadOnlyList<ResolvedTarget> Others { get; init; } = [];
}

/// <summary>
/// Finds the container a target names, among live instances only: an instance ident, a workload name,
/// <c>entrypoint.app</c> or <c>app</c> (in that order); a suffix <c>#N</c> picks the N-th (from 1) of the
/// matching instances ordered by ident, otherwise the first is taken.
/// </summary>
public static class TargetResolver
{
    public static ResolvedTarget? Resolve(RegistrySnapshot snapshot, string target, out string? problem)
    {
        problem = null;
        var name = target;
        int? index = null;
        var hash = target.LastIndexOf('#');
        if (hash >= 0)
        {
            if (!int.TryParse(target.AsSpan(hash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
            {
                problem = $"\"{LoginName.Printable(target)}\": the index after # must be a number from 1";
                return null;
            }
            index = n;
            name = target[..hash];
        }
        if (name.Length == 0)
        {
            problem = "no target after ~ (use user~ident, user~entrypoint.app or user~app)";
            return null;
        }

        var candidates = Candidates(snapshot, name).OrderBy(w => w.Record!.Ident, StringComparer.Ordinal).ToList();
        if (candidates.Count == 0)
        {
            problem = $"no live instance matches \"{LoginName.Printable(name)}\"";
            return null;
        }
        if (index > candidates.Count)
        {
            problem =
                $"\"{LoginName.Printable(name)}\" has {candidates.Count} live instance{(candidates.Count == 1 ? "" : "s")}, not {index}";
            return null;
        }
        var chosen = candidates[(index ?? 1) - 1].Record!;
        if (!snapshot.Nodes.TryGetValue(chosen.Node, out var node))
        {
            problem = $"instance {chosen.Ident} runs on node {chosen.Node}, which is not in the registry";
            return null;
        }
        var others = index is not null ? [] : candidates.Skip(1)
            .Select(c => snapshot.Nodes.TryGetValue(c.Record!.Node, out var n) ? new ResolvedTarget(c.Record, n) : null)
            .OfType<ResolvedTarget>().ToList();
        return new ResolvedTarget(chosen, node) { Others = others };
    }

    private static IEnumerable<WorkloadView> Candidates(RegistrySnapshot snapshot, string name)
    {
        var live = snapshot.Workloads.Where(w => w.IsLive && w.Record is not null);
        var byIdent = live.Where(w => w.Record!.Ident == name).ToList();
        if (byIdent.Count > 0) return byIdent;
        var byName = live.Where(w => w.Record!.Name == name).ToList();
        if (byName.Count > 0) return byName;
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        if (dot > 0 && name.IndexOf('.', dot + 1) < 0)
        {
            var service = snapshot.Live(name[(dot + 1)..], name[..dot]);
            if (service.Count > 0) return service;
        }
        return snapshot.LiveByService.Where(s => s.Key.App == name).SelectMany(s => s.Value);
    }

    /// <summary>What a user may reach, for the message a login without <c>~target</c> gets.</summary>
    public static string Reachable(RegistrySnapshot snapshot, SshUser user)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"Log in as {user.Name}~TARGET, where TARGET is an instance ident, entrypoint.app or app (#N picks the N-th).\n");
        var any = false;
        foreach (var (service, views) in snapshot.LiveByService
            .OrderBy(s => s.Key.App, StringComparer.Ordinal).ThenBy(s => s.Key.Entrypoint, StringComparer.Ordinal))
        {
            if (user.AccessTo(service.App) is not { } access || views.Count == 0) continue;
            any = true;
            var idents = string.Join(", ", views.Select(v => v.Record!.Ident).Order(StringComparer.Ordinal));
            sb.Append(CultureInfo.InvariantCulture,
                $"  {service.Entrypoint}.{service.App}  {(access.Shell ? "shell" : "exec only")}  {views.Count} live: {idents}\n");
        }
        if (!any) sb.Append("  (nothing live that you may enter)\n");
        return sb.ToString();
    }
}
