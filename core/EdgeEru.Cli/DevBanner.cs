
namespace EdgeEru.Cli;

/// <summary>
/// What <c>eru dev</c> prints once the cluster is up: where each part listens, and lines to try it with. The CLI's
/// defaults are this command's defaults; other ports or state dirs are spelled out in the lines.
/// </summary>
internal static class DevBanner
{
    public static void Print(DevSettings settings, string stateDir, TimeSpan took, string etcdEndpoints,
        IReadOnlyList<SelfHostedEdge.Replica> edge, IReadOnlyList<(string Name, string Endpoint, string Network)> nodes, string lbToken,
        string coreToken, bool dualStack, IReadOnlyList<(string Name, string Socket, string? Netns)> bgp)
    {
        var dir = Path.GetRelativePath(Environment.CurrentDirectory, stateDir) is { } rel && !rel.StartsWith("..", StringComparison.Ordinal)
            ? rel : stateDir;
        var sshFlags = $"-p {settings.SshPort} -o UserKnownHostsFile={Path.Combine(dir, "ssh-known-hosts")}"
            + (settings.SshKey is { } pub && pub.EndsWith(".pub", StringComparison.Ordinal) ? $" -i {pub[..^4]}" : "");
        var coreFlag = settings.CorePort == 5001 && dir == ".dev"
            ? "" : $" --core http://127.0.0.1:{settings.CorePort} --token $(cat {Path.Combine(dir, "core.token")})";
        var lbFlag = settings.LbAdminPort == 9181 && dir == ".dev"
            ? "" : $" --admin http://127.0.0.1:{settings.LbAdminPort} --token $(cat {Path.Combine(dir, "lb.token")})";
        var etcdWhere = settings.EtcdUrl is not null ? " (yours)"
            : $", data {Path.Combine(stateDir, "etcd")}" + (settings.EtcdMembers > 1 ? $", {settings.EtcdMembers} members" : "");

        Console.WriteLine();
        Console.WriteLine($"EdgeEru dev cluster is up in {took.TotalSeconds:0} s");
        Console.WriteLine($"  etcd       {etcdEndpoints,-30} prefix {settings.Prefix}{etcdWhere}");
        if (settings.Datacenter is not null || settings.FollowDcs is { Length: > 0 })
            Console.WriteLine($"  datacenter {settings.Datacenter ?? "(unnamed)"}"
                + (settings.FollowDcs is { Length: > 0 } follow
                    ? "; eru-dns and eru-lb follow "
                        + string.Join(", ", follow.Select(f => f[..f.IndexOf('=', StringComparison.Ordinal)]))
                        + " read-only (docs/multi-dc.md)"
                    : ""));
        Console.WriteLine($"  core       http://127.0.0.1:{settings.CorePort,-14} gRPC edgeeru.core.v1; "
            + $"token in {Path.Combine(dir, "core.token")}, audit in {Path.Combine(dir, "core-audit.jsonl")}");
        // The fragment never reaches the server: the page keeps the token for its tab (Core's own token: admin).
        Console.WriteLine($"  console    http://127.0.0.1:{settings.ConsolePort}/console#token={coreToken}");
        if (edge.Count == 0)
        {
            if (settings.Acme)
                Console.WriteLine($"  acme       pebble (an ACME test CA) for hello.eru.local; https://127.0.0.1:{settings.LbTlsPort}, "
                    + "certificates: ./eru lb cert ls" + lbFlag);
            Console.WriteLine($"  dns        127.0.0.1:{settings.DnsPort,-21} zone eru.; "
                + $"metrics http://127.0.0.1:{settings.DnsHttpPort}/metrics");
            Console.WriteLine($"  lb         http://127.0.0.1:{settings.LbPort,-14} dashboard "
                + $"http://127.0.0.1:{settings.LbAdminPort}/dashboard#token={lbToken}");
        }
        foreach (var r in edge)
            Console.WriteLine(r.Entrypoint == "dns"
                ? $"  dns        {r.Address + ":53",-24} workload {r.Name} on {r.Node}; metrics http://{r.Address}:9153/metrics"
                : $"  lb         http://{r.Address,-17} workload {r.Name} on {r.Node}; "
                    + $"dashboard http://{r.Address}:9181/dashboard#token={lbToken}");
        if (edge.Count > 0)
            Console.WriteLine($"  edge spec  {Path.Combine(dir, "edge.yaml")} (eru replace it with --keep-ip to roll the edge)");
        Console.WriteLine($"  ssh        127.0.0.1:{settings.SshPort,-21} user {settings.SshUser}; "
            + $"audit in {Path.Combine(dir, "ssh-audit.jsonl")}");
        for (var i = 0; i < nodes.Count; i++)
            Console.WriteLine($"  node {nodes[i].Name,-5} {nodes[i].Endpoint,-30} "
                + $"agent http://127.0.0.1:{settings.AgentHttpPort + i}/metrics");
        foreach (var (name, socket, netns) in bgp)
            Console.WriteLine($"  bgp {name,-6} birdc -s {socket} show protocols" + (netns is null ? "" : $"   (netns {netns})"));
        Console.WriteLine();
        Console.WriteLine("Try it:");
        var (dnsAt, lbAt) = edge.Count == 0 ? ($"@127.0.0.1 -p {settings.DnsPort}", $"127.0.0.1:{settings.LbPort}")
            : ($"@{edge.First(r => r.Entrypoint == "dns").Address}", edge.First(r => r.Entrypoint == "lb").Address);
        Console.WriteLine($"  dig {dnsAt} web.hello.eru +short          # every hello web instance");
        Console.WriteLine($"  dig {dnsAt} v2.web.hello.eru +short       # the v2 ones");
        Console.WriteLine($"  curl -H 'Host: hello.eru.local' http://{lbAt}/");
        Console.WriteLine($"  curl -H 'Host: hello.eru.local' -H 'X-Canary: 1' http://{lbAt}/");
        Console.WriteLine($"  ssh {sshFlags} {settings.SshUser}~web.hello@127.0.0.1");
        if (dualStack)
        {
            Console.WriteLine($"  dig {dnsAt} web.hello.eru AAAA +short     # their IPv6 addresses (the rig is dual-stack)");
            Console.WriteLine($"  curl -6 -H 'Host: hello.eru.local' http://[::1]:{settings.LbPort}/");
            Console.WriteLine($"  ssh -6 {sshFlags} {settings.SshUser}~web.hello@::1");
        }
        if (settings.Acme)
            Console.WriteLine($"  curl --cacert {Path.Combine(dir, "acme-root.pem")} "
                + $"--resolve hello.eru.local:{settings.LbTlsPort}:127.0.0.1 https://hello.eru.local:{settings.LbTlsPort}/"
                + "   # the certificate eru-lb got by ACME");
        Console.WriteLine($"  ./eru ps{coreFlag}");
        Console.WriteLine($"  ./eru logs -f hello{coreFlag}");
        Console.WriteLine($"  ./eru node ls{coreFlag}");
        Console.WriteLine($"  ./eru lb explain hello.eru.local --header X-Canary=1{lbFlag}");
        if (nodes.Count > 0)
            Console.WriteLine($"  ./eru deploy examples/hello.yaml --pod dev --count 2 --memory 32M --network {nodes[0].Network} --tag v3 "
                + $"--env VERSION=v3{coreFlag}");
        Console.WriteLine();
        Console.WriteLine("Ctrl-C stops everything this started.");
    }
}
