using System.Text;
using EdgeEru.Agent.Health;
using EdgeEru.Agent.Logs;
using EdgeEru.Agent.Stats;
using EdgeEru.Registry.Model;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace EdgeEru.Agent.Tests;

/// <summary>
/// The agent's pure parts: line splitting, syslog format, health thresholds, cgroup and proc parsers, query and config validation.
/// </summary>
public sealed class LineSplitterTests
{
    private static List<string> Split(int max, params byte[][] chunks)
    {
        var lines = new List<string>();
        var s = new LineSplitter(max);
        foreach (var c in chunks) s.Feed(c, lines.Add);
        s.Flush(lines.Add);
        return lines;
    }

    [Fact]
    public void Splits_at_newlines_across_chunks_and_drops_CR() =>
        Assert.Equal(["one", "two", "three", "", "last"],
            Split(64, "one\r\ntw"u8.ToArray(), "o\nthree\n\nla"u8.ToArray(), "st"u8.ToArray()));

    [Fact]
    public void Invalid_UTF8_is_escaped_and_valid_text_kept() =>
        Assert.Equal(["caf\u00e9 \\xFF\\xFE ok", "\\xC3"],
            Split(64, [.. "caf\u00e9 "u8.ToArray(), 0xFF, 0xFE, .. " ok\n"u8.ToArray(), 0xC3]));

    [Fact]
    public void Overlong_lines_are_split_without_cutting_a_character()
    {
        // 10 bytes max: "aaaaaaaaa" then a 2-byte é would straddle the cut, so it moves to the next piece.
        var lines = Split(10, Encoding.UTF8.GetBytes("aaaaaaaaa\u00e9bbbbbbbbbbbbbbb\nshort\n"));
        Assert.Equal(["aaaaaaaaa", "\u00e9bbbbbbbb", "bbbbbbb", "short"], lines);
        Assert.All(lines, l => Assert.True(Encoding.UTF8.GetByteCount(l) <= 10));
    }

    [Fact]
    public void A_line_exactly_filling_the_buffer_is_one_line() =>
        Assert.Equal(["0123456789", "x"], Split(10, "0123456789"u8.ToArray(), "\nx\n"u8.ToArray()));

    [Fact]
    public void Records_are_JSON_with_the_contract_fields_in_order()
    {
        var r = new LogRecord
        {
            ContainerId = "abc", App = "shop", Entrypoint = "web", Ident = "x1", Node = "h1", Stream = "stderr",
            Time = new DateTimeOffset(2026, 11, 26, 9, 30, 0, TimeSpan.Zero), Line = "say \"hi\"\t\\x00",
        };
        Assert.Equal(
            "{\"app\":\"shop\",\"entrypoint\":\"web\",\"ident\":\"x1\",\"node\":\"h1\",\"stream\":\"stderr\","
            + "\"time\":\"2026-11-26T09:30:00Z\",\"line\":\"say \\u0022hi\\u0022\\t\\\\x00\"}",
            Encoding.UTF8.GetString(r.Json.Span));
    }
}

public sealed class SyslogTests
{
    [Fact]
    public void Formats_RFC_5424_with_structured_data_and_BOM()
    {
        var r = new LogRecord
        {
            ContainerId = "abc", App = "shop", Entrypoint = "web", Ident = "x1", Node = "h1", Stream = "stdout",
            Time = new DateTimeOffset(2026, 11, 26, 9, 30, 0, 123, TimeSpan.Zero), Line = "hello ]\"",
        };
        var bytes = Syslog.Format(r, facility: 16);
        Assert.Equal(
            "<134>1 2026-11-26T09:30:00.123000Z h1 shop x1 web "
            + "[eru@32473 app=\"shop\" entrypoint=\"web\" ident=\"x1\" stream=\"stdout\"] \uFEFFhello ]\"",
            Encoding.UTF8.GetString(bytes));
        var framed = Encoding.UTF8.GetString(Syslog.Frame(bytes));
        Assert.StartsWith($"{bytes.Length} <134>", framed, StringComparison.Ordinal);
    }
}

public sealed class HealthStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Healthy_after_N_successes_unhealthy_after_M_failures()
    {
        var spec = new HealthCheckSpec { HealthyAfter = 2, UnhealthyAfter = 3 };
        var h = new HealthState(T0);
        Assert.Null(h.Observe(null, spec, T0));
        Assert.Equal("starting", h.Reason);
        Assert.True(h.Observe(null, spec, T0));
        Assert.Null(h.Reason);
        Assert.Null(h.Observe("down", spec, T0));
        Assert.Null(h.Observe("down", spec, T0));
        Assert.True(h.Healthy);
        Assert.False(h.Observe("down", spec, T0));
        Assert.Equal("down", h.Reason);
        Assert.Null(h.Observe(null, spec, T0)); // one success is not two
        Assert.True(h.Observe(null, spec, T0));
    }

    [Fact]
    public void Failures_in_the_start_grace_do_not_count()
    {
        var spec = new HealthCheckSpec { UnhealthyAfter = 1, StartGraceMs = 5000 };
        var h = new HealthState(T0);
        Assert.Null(h.Observe("refused", spec, T0.AddSeconds(1)));
        Assert.Equal(0, h.Failures);
        Assert.Null(h.Observe("refused", spec, T0.AddSeconds(6)));
        Assert.Equal(1, h.Failures);
        Assert.Equal("refused", h.Reason);
    }

    [Fact]
    public void A_check_is_due_after_its_interval() =>
        Assert.True(new HealthState(T0).IsDue(new HealthCheckSpec { IntervalMs = 100 }, T0));
}

public sealed class CgroupTests
{
    private const string MountInfo = """
        25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
        30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
        31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
        32 25 0:28 /sub /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
        33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """;

    [Fact]
    public void Mounts_and_process_cgroups_resolve_to_directories()
    {
        var (v2, v1) = Cgroups.ParseMountInfo(MountInfo);
        Assert.Equal("/sys/fs/cgroup/unified", v2);
        Assert.Equal(("/sys/fs/cgroup/memory", "/"), v1["memory"]);
        Assert.Equal(("/sys/fs/cgroup/cpu,cpuacct", "/"), v1["cpuacct"]);
        var (procV2, procV1) =
            Cgroups.ParseProcCgroup("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/system.slice/docker-abc.scope\n");
        Assert.Equal("/system.slice/docker-abc.scope", procV2);
        Assert.Equal("/docker/abc", procV1["cpuacct"]);
        Assert.Equal("/sys/fs/cgroup/blkio/docker/abc", Cgroups.Resolve("/sys/fs/cgroup/blkio", "/sub", "/sub/docker/abc"));
        Assert.Null(Cgroups.Resolve("/sys/fs/cgroup/blkio", "/sub", "/other/abc"));
    }

    [Fact]
    public void Counters_parse()
    {
        Assert.Equal((300, 70), Cgroups.ParseIoStat("8:0 rbytes=100 wbytes=50 rios=1 wios=2\n8:16 rbytes=200 wbytes=20 rios=1\n"));
        Assert.Equal((10, 4), Cgroups.ParseBlkioV1("8:0 Read 10\n8:0 Write 4\n8:0 Sync 3\n8:0 Total 14\nTotal 14\n"));
        Assert.Equal(123456, Cgroups.ParseKeyValues("usage_usec 123456\nuser_usec 100\n")["usage_usec"]);
        const string netDev = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:  999       9    0    0    0     0          0         0      999       9    0    0    0     0       0          0
              eth0: 1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0
            """;
        Assert.Equal((1500, 700), Cgroups.ParseNetDev(netDev));
    }
}

public sealed class ValidationTests
{
    [Theory]
    [InlineData(null, null, "give either")]
    [InlineData("abc", null, "4-64 lowercase hex")]
    [InlineData(null, "Shop", "not an app name")]
    public void Bad_stream_queries_are_named(string? container, string? app, string problem)
    {
        var (_, _, _, p) = LogStreamApi.Parse(container, app, null, null, null);
        Assert.Contains(problem, p, StringComparison.Ordinal);
    }

    [Fact]
    public void A_good_stream_query_parses()
    {
        var (filter, tail, follow, p) = LogStreamApi.Parse(null, "shop", "web", "20", "true");
        Assert.Null(p);
        Assert.Equal(new LogFilter(null, "shop", "web"), filter);
        Assert.Equal(20, tail);
        Assert.True(follow);
        Assert.Contains("tail", LogStreamApi.Parse(null, "shop", null, "-1", null).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_sinks_and_settings_are_named()
    {
        var logs = new LogsOptions
        {
            Sinks =
            [
                new LogSinkOptions { Type = "kafka" },
                new LogSinkOptions { Type = "tcp", Address = "nohost" },
                new LogSinkOptions { Type = "file" },
                new LogSinkOptions { Type = "syslog-udp", Address = "127.0.0.1:514", Apps = ["Bad App"] },
            ],
        };
        var problems = string.Join("\n", logs.Problems());
        Assert.Contains("Logs:Sinks:0:Type \"kafka\"", problems, StringComparison.Ordinal);
        Assert.Contains("Logs:Sinks:1:Address \"nohost\"", problems, StringComparison.Ordinal);
        Assert.Contains("Logs:Sinks:2:Path", problems, StringComparison.Ordinal);
        Assert.Contains("\"Bad App\"", problems, StringComparison.Ordinal);
        Assert.Empty(new LogsOptions { Sinks = [new LogSinkOptions { Type = "udp", Address = "logs.example:5140" }] }.Problems());
        Assert.Contains("Agent:Node", string.Join("\n", new AgentServiceOptions().Problems()), StringComparison.Ordinal);
        Assert.Contains("Metrics:Graphite", string.Join("\n", new Stats.MetricsOptions { Graphite = "x" }.Problems()),
            StringComparison.Ordinal);
    }

    [Fact]
    public void Every_configuration_problem_is_named_before_start_even_values_that_do_not_bind()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:Node"] = "h1", ["Agent:Docker"] = "http://nope", ["Metrics:Interval"] = "banana", ["Logs:Sinks:0:Type"] = "udp",
        }).Build();
        var problems = string.Join("\n", AgentHost.ConfigProblems(config));
        Assert.Contains("Agent:Docker: docker endpoint \"http://nope\"", problems, StringComparison.Ordinal);
        Assert.Contains("banana", problems, StringComparison.Ordinal);
        Assert.Contains("Logs:Sinks:0:Address", problems, StringComparison.Ordinal);
        Assert.DoesNotContain("Agent:Node", problems, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9190", "http://127.0.0.1:9190")]
    [InlineData("http://0.0.0.0:9190", null)]
    [InlineData("http://*:9190;http://127.0.0.1:1", null)]
    public void The_advertised_url_comes_from_a_named_host(string urls, string? expected) =>
        Assert.Equal(expected, AgentHost.Advertised(urls));
}

public sealed class FileSinkTests
{
    [Fact]
    public async Task Rotates_past_its_size_and_keeps_the_configured_number_of_files()
    {
        var dir = Directory.CreateTempSubdirectory("eru-filesink-").FullName;
        try
        {
            var path = Path.Combine(dir, "out.jsonl");
            var sink = new Logs.Sinks.FileSink("file", new LogSinkOptions { Type = "file", Path = path, MaxBytes = 4096, Keep = 2 },
                Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            sink.Start();
            for (var i = 0; i < 200; i++)
                sink.Offer(new LogRecord
                {
                    ContainerId = "c", App = "a", Entrypoint = "e", Ident = "i", Node = "n", Stream = "stdout",
                    Time = DateTimeOffset.UnixEpoch, Line = $"line {i:D4} " + new string('x', 40), Seq = i,
                });
            await TestSupport.Eventually.True(() => sink.Shipped == 200, TimeSpan.FromSeconds(10), "200 lines written");
            await sink.DisposeAsync();

            Assert.True(File.Exists(path) && File.Exists(path + ".1") && File.Exists(path + ".2"));
            Assert.False(File.Exists(path + ".3"));
            foreach (var f in new[] { path, path + ".1", path + ".2" }) Assert.InRange(new FileInfo(f).Length, 1, 4096);
            // The newest lines are in the live file, in order, each a JSON record.
            var last = File.ReadAllLines(path);
            Assert.EndsWith("line 0199 " + new string('x', 40) + "\"}", last[^1], StringComparison.Ordinal);
            var numbers = last
                .Select(l => int.Parse(System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("line").GetString()![5..9],
                    System.Globalization.CultureInfo.InvariantCulture))
                .ToList();
            Assert.Equal(Enumerable.Range(numbers[0], numbers.Count), numbers);
            Assert.Equal(0, sink.Dropped);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>The splitter against random input: chunking never changes the lines, pieces fit, text survives.</summary>
public sealed class LineSplitterPropertyTests
{
    private static readonly string[] Alphabet = ["a", "b", " ", "\n", "\r\n", "\u00e9", "\u20ac", "\U0001F600"];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_text_in_random_chunks_splits_as_a_whole(int seed)
    {
        var random = new Random(seed);
        for (var round = 0; round < 200; round++)
        {
            var max = random.Next(4, 40);
            var text = string.Concat(Enumerable.Range(0, random.Next(0, 300)).Select(_ => Alphabet[random.Next(Alphabet.Length)]));
            var bytes = Encoding.UTF8.GetBytes(text);

            var whole = new List<string>();
            var s1 = new LineSplitter(max);
            s1.Feed(bytes, whole.Add);
            s1.Flush(whole.Add);

            var chunked = new List<string>();
            var s2 = new LineSplitter(max);
            for (var at = 0; at < bytes.Length;)
            {
                var n = Math.Min(bytes.Length - at, random.Next(1, 50));
                s2.Feed(bytes.AsSpan(at, n), chunked.Add);
                at += n;
            }
            s2.Flush(chunked.Add);

            Assert.Equal(whole, chunked);
            Assert.All(whole,
                l => Assert.True(Encoding.UTF8.GetByteCount(l) <= max, $"piece of {Encoding.UTF8.GetByteCount(l)} bytes over {max}"));
            // Valid UTF-8 is never cut inside a character.
            Assert.All(whole, l => Assert.DoesNotContain("\\x", l, StringComparison.Ordinal));
            // Pieces joined give back the text's lines (without the newlines and CRs before them).
            Assert.Equal(text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal),
                string.Concat(whole));
        }
    }
}
