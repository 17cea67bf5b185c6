using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using V1 = EdgeEru.Core.Api.V1;

namespace EdgeEru.Cli;

/// <summary><c>eru dns ls|set|rm</c>: static records eru-dns serves beside the generated names (registry kind dns/records).</summary>
internal static class DnsCommand
{
    public static Command Create()
    {
        var api = new CoreApi();
        var name = new Argument<string>("name") { Description = "Owner name without the final dot (db.eru)" };
        var records = new Option<string[]>("--record")
        {
            Description = "TYPE VALUE, e.g. \"A 198.18.0.5\", \"TXT primary\", \"SRV 10 5 5432 db.eru\", \"MX 10 mail.eru\"; repeatable",
            Required = true,
        };
        var ttl = new Option<uint>("--ttl") { Description = "Seconds (default 60)", DefaultValueFactory = _ => 60 };

        var ls = new Command("ls", "List static DNS records");
        ls.SetAction((pr, ct) => api.RunAsync(pr, "dns ls", async (c, t) =>
        {
            var reply = await c.ListDnsRecordsAsync(new V1.ListDnsRecordsRequest(), cancellationToken: t);
            if (pr.GetValue(api.Json)) Console.WriteLine(JsonFormatter.Default.Format(reply));
            else CliText.Table(["NAME", "TYPE", "VALUE", "TTL"], reply.Sets.SelectMany(s => s.Records.Select(r => new[]
            {
                s.Name, r.Type, r.Value, r.Ttl.ToString(CultureInfo.InvariantCulture),
            })));
            return 0;
        }, ct));

        var set = new Command("set", "Set a name's records (replaces the ones it had)") { name, records, ttl };
        set.SetAction((pr, ct) => api.RunAsync(pr, "dns set", async (c, t) =>
        {
            var request = new V1.PutDnsRecordsRequest { Set = new V1.DnsRecordSet { Name = pr.GetValue(name) } };
            request.Set.Records.Add(Parse(pr.GetValue(records) ?? [], pr.GetValue(ttl)));
            var written = await c.PutDnsRecordsAsync(request, cancellationToken: t);
            Console.WriteLine($"{written.Name}: {string.Join(", ", written.Records.Select(r => r.Type + " " + r.Value))}");
            return 0;
        }, ct));

        var rm = new Command("rm", "Remove a name's records") { name };
        rm.SetAction((pr, ct) => api.RunAsync(pr, "dns rm", async (c, t) =>
        {
            await c.DeleteDnsRecordsAsync(new V1.DeleteDnsRecordsRequest { Name = pr.GetValue(name) }, cancellationToken: t);
            Console.WriteLine($"removed the records of {pr.GetValue(name)}");
            return 0;
        }, ct));

        var cmd = new Command("dns", "Static DNS records served by eru-dns (through eru-core)") { ls, set, rm };
        api.AddTo(cmd);
        return cmd;
    }

    /// <summary>"TYPE VALUE" pairs; eru-core checks the values (and names the bad one).</summary>
    internal static IEnumerable<V1.DnsRecord> Parse(IEnumerable<string> records, uint ttl) => records.Select(text =>
    {
        var t = text.Trim();
        var space = t.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0) throw new CliException($"--record \"{text}\" must be TYPE VALUE (e.g. \"A 198.18.0.5\")");
        return new V1.DnsRecord { Type = t[..space].ToUpperInvariant(), Value = t[(space + 1)..].Trim(), Ttl = ttl };
    }).ToList();
}
