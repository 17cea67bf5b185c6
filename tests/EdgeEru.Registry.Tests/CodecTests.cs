using System.Text;
using EdgeEru.Registry.Model;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

public class CodecTests
{
    [Fact]
    public void Workload_round_trips_with_snake_case_fields_and_version()
    {
        var w = Samples.Workload("abc123", tags: ["v1", "canary"], ip: "198.18.16.5");
        var json = Kinds.Workloads.Encode(w);
        var text = Encoding.UTF8.GetString(json);
        Assert.Contains("\"v\":1", text);
        Assert.Contains("\"memory_limit_bytes\":134217728", text);
        Assert.Contains("\"cpu_bind\":[{\"core\":2,\"pieces\":100}", text);
        var back = Kinds.Workloads.Decode(json, "abc123");
        Assert.Equal(text, Encoding.UTF8.GetString(Kinds.Workloads.Encode(back)));
        Assert.Equal(["v1", "canary"], back.Tags);
        Assert.Equal("198.18.16.5", back.Networks["eru-mv"]);
        Assert.Equal(w.Labels, back.Labels);
    }

    [Fact]
    public void Every_kind_round_trips()
    {
        Check(Kinds.Pods, Samples.Pod());
        Check(Kinds.Nodes, Samples.Node("n1"));
        Check(Kinds.NodeStatus, Samples.NodeStatus("n1"));
        Check(Kinds.WorkloadStatus, Samples.Status("abc", ip: "198.18.16.9"));
        Check(Kinds.WorkloadStatus, Samples.Status("abc", ip: "198.18.16.9", ip6: "fd00:e0::9"));
        Check(Kinds.Workloads, Samples.Workload("abc") with { Networks6 = StringMap.Of(("eru-mv", "fd00:e0::5")) });
        Check(Kinds.LbDomains, Samples.LbDomain());
        Check(Kinds.SshUsers, new SshUser { Name = "ops", Keys = [Samples.SshKeyLine], Apps = new() { ["*"] = new SshAppAccess() } });

        static void Check<T>(RegistryKind<T> kind, T value) where T : class, IRegistryRecord
        {
            var json = kind.Encode(value);
            var back = kind.Decode(json, value.KeyName);
            Assert.Equal(Encoding.UTF8.GetString(json), Encoding.UTF8.GetString(kind.Encode(back)));
        }
    }

    /// <summary>
    /// Values written by hand (etcdctl put) hold only the required fields. Every other field must read as its
    /// default, never as null where the type says it cannot be: followers index these values and a null
    /// collection would stop a snapshot build (source-generated init-only defaults, dotnet/runtime#84484).
    /// </summary>
    [Theory]
    [InlineData("pods", "dev", """{"v":1,"name":"dev"}""")]
    [InlineData("nodes", "n1", """{"v":1,"name":"n1","pod":"dev","endpoint":{"address":"unix:///run/docker.sock"}}""")]
    [InlineData("node-status", "n1", """{"v":1,"node":"n1"}""")]
    [InlineData("allocations", "n1", """{"v":1,"node":"n1"}""")]
    [InlineData("workloads", "abc123",
        """{"v":1,"id":"abc123","name":"hello_web_""" +
        """abc123","app":"hello","entrypoint":"web","ident":"abc123","pod":"dev","node":"n1","image":"busybox"}""")]
    [InlineData("workload-status", "abc123", """{"v":1,"id":"abc123","node":"n1"}""")]
    [InlineData("lb/domains", "a.example", """{"v":1,"name":"a.example","init":"b","nodes":{"b":{"type":"respond","status":200}}}""")]
    [InlineData("ssh/users", "ops", """{"v":1,"name":"ops"}""")]
    [InlineData("dns/records", "x.eru", """{"v":1,"name":"x.eru","records":[{"type":"A","value":"198.18.0.1"}]}""")]
    public void Hand_written_values_with_only_required_fields_read_with_defaults_not_nulls(string segment, string key, string json)
    {
        var kind = Kinds.All.Single(k => k.Segment == segment);
        IRegistryRecord value;
        try
        {
            value = kind.DecodeRecord(Encoding.UTF8.GetBytes(json), key);
        }
        catch (RegistryValueException ex) when (ex.Problem.Contains("missing", StringComparison.OrdinalIgnoreCase)
            || ex.Problem.Contains("required", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"{segment}: the sample misses a required field: {ex.Message}");
            return;
        }
        var nulls = new List<string>();
        NonNullable(value, segment, nulls, 0);
        Assert.True(nulls.Count == 0, "null where the type forbids it: " + string.Join(", ", nulls));
    }

    private static void NonNullable(object value, string path, List<string> nulls, int depth)
    {
        if (depth > 4 || value is string || value.GetType().IsPrimitive || value is System.Collections.IEnumerable) return;
        var context = new System.Reflection.NullabilityInfoContext();
        foreach (var p in value.GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (p.GetIndexParameters().Length > 0 || p.PropertyType.IsValueType) continue;
            var v = p.GetValue(value);
            if (v is null)
            {
                if (context.Create(p).ReadState == System.Reflection.NullabilityState.NotNull) nulls.Add($"{path}.{p.Name}");
            }
            else if (p.PropertyType.Namespace?.StartsWith("EdgeEru", StringComparison.Ordinal) == true)
                NonNullable(v, $"{path}.{p.Name}", nulls, depth + 1);
        }
    }

    [Fact]
    public void Unknown_fields_are_ignored_so_older_readers_read_newer_additive_values()
    {
        var json = """{"v":1,"name":"dev","description":"d","labels":{},"added_later":{"x":[1,2]}}"""u8;
        Assert.Equal("dev", Kinds.Pods.Decode(json, "dev").Name);
    }

    [Fact]
    public void IPv6_addresses_ride_beside_the_IPv4_map_so_old_and_new_readers_read_each_others_values()
    {
        var status = Samples.Status("abc", ip: "198.18.16.9", ip6: "fd00:e0::9");
        var json = Encoding.UTF8.GetString(Kinds.WorkloadStatus.Encode(status));
        Assert.Contains("\"addresses\":{\"eru-mv\":\"198.18.16.9\"},\"addresses6\":{\"eru-mv\":\"fd00:e0::9\"}", json);
        // An old reader knows `addresses` alone: its shape is unchanged, and `addresses6` is a field it ignores.
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal("198.18.16.9", doc.RootElement.GetProperty("addresses").GetProperty("eru-mv").GetString());
        var withUnknown = json.Replace("\"addresses6\"", "\"added_later\"", StringComparison.Ordinal);
        Assert.Null(Kinds.WorkloadStatus.Decode(Encoding.UTF8.GetBytes(withUnknown), "abc").Addresses6);
        // A new reader of an old value: no IPv6, and nothing written for it.
        var old = Kinds.WorkloadStatus.Decode("""{"v":1,"id":"abc","node":"n1","addresses":{"eru-mv":"198.18.16.9"}}"""u8, "abc");
        Assert.Null(old.Addresses6);
        Assert.DoesNotContain("addresses6", Encoding.UTF8.GetString(Kinds.WorkloadStatus.Encode(old)));
        Assert.Equal("fd00:e0::9", Kinds.WorkloadStatus.Decode(Encoding.UTF8.GetBytes(json), "abc").Addresses6!["eru-mv"]);
    }

    [Fact]
    public void An_address6_that_is_not_IPv6_is_refused_with_the_network_named()
    {
        var ex = Assert.Throws<RegistryValueException>(() => Kinds.WorkloadStatus.Decode(
            """{"v":1,"id":"abc","node":"n1","addresses6":{"eru-mv":"198.18.16.9"}}"""u8, "abc"));
        Assert.Contains("network eru-mv address6 \"198.18.16.9\" is not an IPv6 address", ex.Message);
        var node = Assert.Throws<RegistryValueException>(() => Kinds.Nodes.Decode(
            """{"v":1,"name":"n1","pod":"dev","endpoint":{"address":"unix:///run/docker.sock"},"address6":"10.0.0.1"}"""u8, "n1"));
        Assert.Contains("address6 \"10.0.0.1\" is not an IPv6 address", node.Message);
    }

    [Fact]
    public void A_newer_schema_major_version_is_refused_with_the_key_named()
    {
        var ex = Assert.Throws<RegistryValueException>(() => Kinds.Pods.Decode("""{"v":2,"name":"dev"}"""u8, "dev"));
        Assert.Equal("pods/dev: schema version 2 is newer than this build's 1", ex.Message);
        // Even when the newer shape no longer parses as this version's type.
        var ex2 = Assert.Throws<RegistryValueException>(() => Kinds.Pods.Decode("""{"v":3,"name":{"first":"dev"}}"""u8, "dev"));
        Assert.Contains("schema version 3 is newer", ex2.Message);
    }

    [Theory]
    [InlineData("not json", "invalid JSON")]
    [InlineData("null", "JSON null")]
    [InlineData("{\"v\":1}", "invalid JSON")] // required name missing
    [InlineData("{\"v\":1,\"name\":\"other\"}", "stored under \"dev\"")]
    [InlineData("{\"v\":1,\"name\":\"Bad_Name\"}", "stored under")]
    [InlineData("{\"v\":0,\"name\":\"dev\"}", "schema version 0 is invalid")]
    [InlineData("{\"v\":1,\"name\":\"dev\",\"labels\":{\"a\":1}}", "must be a string")]
    public void Bad_values_are_refused_with_what_is_wrong(string json, string expected)
    {
        var ex = Assert.Throws<RegistryValueException>(() => Kinds.Pods.Decode(Encoding.UTF8.GetBytes(json), "dev"));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith("pods/dev:", ex.Message);
    }

    [Fact]
    public void Invalid_values_never_encode()
    {
        var bad = Samples.Workload("w1") with { App = "Shop", Ports = [new PublishedPort { Name = "http", Port = 70000 }] };
        var ex = Assert.Throws<RegistryValueException>(() => Kinds.Workloads.Encode(bad));
        Assert.Contains("app \"Shop\" must be a DNS label", ex.Message);
        Assert.Contains("number 70000 is outside 1-65535", ex.Message);

        var node = Samples.Node("n1") with
        {
            Capacity = new NodeCapacity { CpuCores = 2, PiecesPerCore = 50, Numa = [new NumaNode { Id = "0", Cpus = [0, 5] }] },
        };
        var ex2 = Assert.Throws<RegistryValueException>(() => Kinds.Nodes.Encode(node));
        Assert.Contains("pieces_per_core must be at least 100", ex2.Message);
        Assert.Contains("cpu 5 is outside 0..1", ex2.Message);

        var endpoint = Samples.Node("n1") with { Endpoint = new DockerEndpoint { Address = "http://x" } };
        Assert.Contains("must be unix:///path or tcp://host:port",
            Assert.Throws<RegistryValueException>(() => Kinds.Nodes.Encode(endpoint)).Message);
    }

    [Fact]
    public void Keys_have_the_documented_layout()
    {
        var keys = new RegistryKeys("/eru");
        Assert.Equal("/eru/workload-status/abc", keys.Key(Kinds.WorkloadStatus, "abc"));
        Assert.Equal("/eru/lb/domains/hello.eru.local", keys.Key(Kinds.LbDomains, "hello.eru.local"));
        Assert.True(keys.TryParse("/eru/lb/domains/*.example.com", out var kind, out var name));
        Assert.Same(Kinds.LbDomains, kind);
        Assert.Equal("*.example.com", name);
        Assert.True(keys.TryParse("/eru/node-status/n1", out kind, out name));
        Assert.Same(Kinds.NodeStatus, kind);
        Assert.False(keys.TryParse("/eru/nodes/a/b", out _, out _));
        Assert.False(keys.TryParse("/eru/unknown/x", out _, out _));
        Assert.False(keys.TryParse("/erux/nodes/x", out _, out _));
        Assert.Throws<ArgumentException>(() => keys.Key(Kinds.Nodes, "a/b"));
        Assert.Throws<ArgumentException>(() => new RegistryKeys("eru/"));
        Assert.Equal("/erv"u8.ToArray(), RegistryKeys.RangeEnd("/eru"u8));
    }

    [Fact]
    public void StringMap_is_sorted_deduplicated_and_compares_by_content()
    {
        var a = StringMap.Of(("b", "2"), ("a", "1"), ("b", "3"));
        Assert.Equal(["a", "b"], a.Keys);
        Assert.Equal("3", a["b"]);
        Assert.Equal(a, StringMap.Of(("a", "1"), ("b", "3")));
        Assert.False(a.ContainsKey("c"));
    }
}
