using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeEru.Dev;
using EdgeEru.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace EdgeEru.Agent.Tests;

/// <summary>Container output through real sinks: TCP JSON lines, syslog over UDP and TCP, a dead sink, the stream API.</summary>
[Collection(RigCollection.Name)]
public sealed partial class LogTests(RigFixture rig, EtcdFixture etcd, ITestOutputHelper output)
{
    /// <summary>
    /// Prints "line 0" ... "line {n-1}" on stdout, optionally one line on stderr, then idles. (Docker reads
    /// stdout and stderr through separate pipes: their relative order is not kept, each stream's is.)
    /// </summary>
    private static string[] Counter(int n, bool stderr = true) =>
        ["sh", "-c",
            $"i=0; while [ $i -lt {n} ]; do echo \"line $i\"; i=$((i+1)); done; {(stderr ? "echo oops >&2; " : "")}exec sleep 3600"];

    [Fact]
    public async Task Lines_arrive_at_a_TCP_sink_in_order_as_JSON_records()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync("--Logs:Sinks:0:Type", "tcp",
            "--Logs:Sinks:0:Address", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", "--Logs:Sinks:0:Name", "collector");
        var deployed = await scene.DeployAsync("tcplog", Counter(300));
        var id = deployed.Instances[0].WorkloadId!;

        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(20));
        using var reader = new StreamReader(client.GetStream(), Encoding.UTF8);
        var records = new List<JsonElement>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (records.Count < 301 && await reader.ReadLineAsync(cts.Token) is { } line)
                records.Add(JsonDocument.Parse(line).RootElement.Clone());
        }
        finally
        {
            output.WriteLine($"{records.Count} records; first {records.FirstOrDefault()}; last {records.LastOrDefault()}");
        }

        var stdout = records.Where(r => r.GetProperty("stream").GetString() == "stdout")
            .Select(r => r.GetProperty("line").GetString()).ToList();
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"line {i}"), stdout);
        var err = Assert.Single(records, r => r.GetProperty("stream").GetString() == "stderr");
        Assert.Equal("oops", err.GetProperty("line").GetString());
        var first = records[0];
        Assert.Equal(["app", "entrypoint", "ident", "node", "stream", "time", "line"], first.EnumerateObject().Select(p => p.Name));
        Assert.Equal("tcplog", first.GetProperty("app").GetString());
        Assert.Equal("web", first.GetProperty("entrypoint").GetString());
        Assert.Equal(scene.Node, first.GetProperty("node").GetString());
        var workload = (await scene.Store.GetAsync(EdgeEru.Registry.Kinds.Workloads, id))!.Value;
        Assert.Equal(workload.Ident, first.GetProperty("ident").GetString());
        Assert.True(DateTimeOffset.UtcNow - first.GetProperty("time").GetDateTimeOffset() < TimeSpan.FromMinutes(1));

        // Restarted: followed again from the new start.
        await scene.Host.DockerAsync(["restart", "-t", "0", id]);
        var again = new List<string>();
        while (again.Count < 300 && await reader.ReadLineAsync(cts.Token) is { } line)
        {
            var r = JsonDocument.Parse(line).RootElement;
            if (r.GetProperty("stream").GetString() == "stdout") again.Add(r.GetProperty("line").GetString()!);
        }
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"line {i}"), again);
        var metrics = await scene.MetricsAsync();
        Assert.True(AgentScene.Series(metrics, "eru_agent_log_lines_total", ("sink", "collector"), ("outcome", "shipped")) >= 601);
    }

    [Fact]
    public async Task A_container_that_ends_before_its_record_is_written_still_has_its_lines_shipped()
    {
        // Core writes the record after the container started: a short run can be over before the agent may follow it
        // (the perf benchmark's log step once waited for 100,000 lines of such a container that never came).
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync("--Logs:Sinks:0:Type", "tcp",
            "--Logs:Sinks:0:Address", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", "--Logs:Sinks:0:Name", "short");
        await scene.DeployAsync("short", ["sh", "-c", "i=0; while [ $i -lt 50 ]; do echo \"line $i\"; i=$((i+1)); done"]);

        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(20));
        using var reader = new StreamReader(client.GetStream(), Encoding.UTF8);
        var lines = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (lines.Count < 50 && await reader.ReadLineAsync(cts.Token) is { } line)
            lines.Add(JsonDocument.Parse(line).RootElement.GetProperty("line").GetString()!);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"line {i}"), lines);
    }

    [Fact]
    public async Task An_agent_restarted_with_its_cursor_file_ships_what_was_written_meanwhile_and_nothing_twice()
    {
        var dir = Directory.CreateTempSubdirectory("eru-cursor-").FullName;
        try
        {
            var sink = Path.Combine(dir, "lines.jsonl");
            string[] args =
                ["--Logs:CursorFile", Path.Combine(dir, "cursors.json"), "--Logs:Sinks:0:Type", "file", "--Logs:Sinks:0:Path", sink];
            await using var scene = new AgentScene(rig, etcd.Url, output);
            await scene.RegisterNodeAsync();
            var first = await scene.StartAgentAsync(args);
            // A line every 50 ms, numbered: a gap or a repeat shows in the numbers.
            await scene.DeployAsync("cursor", ["sh", "-c", "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.05; done"]);
            await Eventually.True(() => Ticks(sink).Count > 10, TimeSpan.FromSeconds(20), "ticks shipped");
            await scene.StopAgentAsync(first);
            var beforeStop = Ticks(sink).Max();
            await Task.Delay(2000); // ~40 lines written while no agent runs
            await scene.StartAgentAsync(args);
            await Eventually.True(() => Ticks(sink).Count > beforeStop + 60, TimeSpan.FromSeconds(20), "ticks shipped after the restart");
            var ticks = Ticks(sink);
            output.WriteLine($"{ticks.Count} ticks, {ticks.Min()}..{ticks.Max()}, last before the stop {beforeStop}");
            Assert.Equal(ticks.Count, ticks.Distinct().Count()); // nothing twice
            Assert.Equal(Enumerable.Range(ticks.Min(), ticks.Max() - ticks.Min() + 1), ticks.Order()); // nothing lost
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The tick numbers in a file sink, as shipped.</summary>
    private static List<int> Ticks(string sink) => !File.Exists(sink) ? [] : [.. File.ReadAllLines(sink)
        .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("line").GetString()!)
        .Where(l => l.StartsWith("tick ", StringComparison.Ordinal))
        .Select(l => int.Parse(l[5..], System.Globalization.CultureInfo.InvariantCulture))];

    [Fact]
    public async Task Syslog_listeners_over_UDP_and_TCP_receive_RFC_5424_messages()
    {
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        using var tcp = new TcpListener(IPAddress.Loopback, 0);
        tcp.Start();
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync(
            "--Logs:Sinks:0:Type", "syslog-udp", "--Logs:Sinks:0:Address", $"127.0.0.1:{((IPEndPoint)udp.Client.LocalEndPoint!).Port}",
            "--Logs:Sinks:0:Facility", "16",
            "--Logs:Sinks:1:Type", "syslog-tcp", "--Logs:Sinks:1:Address", $"127.0.0.1:{((IPEndPoint)tcp.LocalEndpoint).Port}");
        await scene.DeployAsync("sys", Counter(5));

        var viaUdp = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (viaUdp.Count < 6) viaUdp.Add(Encoding.UTF8.GetString((await udp.ReceiveAsync(cts.Token)).Buffer));
        foreach (var m in viaUdp) AssertRfc5424(m, scene.Node, "sys", facility: 16);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"line {i}"),
            viaUdp.Select(Message).Where(l => l.StartsWith("line", StringComparison.Ordinal)));
        Assert.Contains(viaUdp, m => m.StartsWith("<131>1 ", StringComparison.Ordinal) && Message(m) == "oops"); // local0.err for stderr

        // TCP: octet counting, "LEN SP MSG".
        using var client = await tcp.AcceptTcpClientAsync(cts.Token);
        var stream = client.GetStream();
        var viaTcp = new List<string>();
        while (viaTcp.Count < 6) viaTcp.Add(await ReadFramedAsync(stream, cts.Token));
        foreach (var m in viaTcp) AssertRfc5424(m, scene.Node, "sys", facility: 1);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"line {i}"),
            viaTcp.Select(Message).Where(l => l.StartsWith("line", StringComparison.Ordinal)));
    }

    private static async Task<string> ReadFramedAsync(NetworkStream s, CancellationToken ct)
    {
        var len = 0;
        var b = new byte[1];
        while (true)
        {
            await s.ReadExactlyAsync(b, ct);
            if (b[0] == ' ') break;
            Assert.InRange(b[0], (byte)'0', (byte)'9');
            len = len * 10 + b[0] - '0';
        }
        var msg = new byte[len];
        await s.ReadExactlyAsync(msg, ct);
        return Encoding.UTF8.GetString(msg);
    }

    // RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP BOM MSG]
    [GeneratedRegex(
        @"^<(?<pri>\d{1,3})>1 (?<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z) "
        + @"(?<host>[!-~]{1,255}) (?<app>[!-~]{1,48}) (?<proc>[!-~]{1,128}) (?<msgid>[!-~]{1,32}) "
        + @"(?<sd>\[(?<sdid>[^ \]=""]+)(?<params>( [^ =\]""]+=""([^""\\\]]|\\.)*"")*)\])( \uFEFF(?<msg>.*))?$",
        RegexOptions.Singleline)]
    private static partial Regex Rfc5424();

    private static void AssertRfc5424(string m, string node, string app, int facility)
    {
        var match = Rfc5424().Match(m);
        Assert.True(match.Success, "not RFC 5424: " + m);
        var pri = int.Parse(match.Groups["pri"].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(facility, pri / 8);
        Assert.True(pri % 8 is 3 or 6, $"severity {pri % 8}");
        Assert.Equal(node, match.Groups["host"].Value);
        Assert.Equal(app, match.Groups["app"].Value);
        Assert.Equal("web", match.Groups["msgid"].Value);
        Assert.Equal("eru@32473", match.Groups["sdid"].Value);
        Assert.Contains($"app=\"{app}\"", match.Groups["params"].Value, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(match.Groups["ts"].Value, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.None, out _));
    }

    private static string Message(string m) => Rfc5424().Match(m).Groups["msg"].Value;

    [Fact]
    public async Task A_dead_sink_blocks_nothing_and_its_drops_are_counted()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var deadPort = EdgeEru.Dev.Ports.FreeTcp(); // nothing listens there
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync(
            "--Logs:Sinks:0:Type", "tcp", "--Logs:Sinks:0:Address", $"127.0.0.1:{deadPort}", "--Logs:Sinks:0:Name", "dead",
            "--Logs:Sinks:0:Buffer", "50",
            "--Logs:Sinks:1:Type", "tcp", "--Logs:Sinks:1:Address", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}",
            "--Logs:Sinks:1:Name", "alive");
        var id = (await scene.DeployAsync("dead", Counter(2000))).Instances[0].WorkloadId!;

        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(20));
        using var reader = new StreamReader(client.GetStream(), Encoding.UTF8);
        var n = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (n < 2001 && await reader.ReadLineAsync(cts.Token) is not null) n++;
        Assert.Equal(2001, n); // the live sink got everything while the other was dead

        Assert.Equal("true", (await scene.Host.DockerAsync(["inspect", "-f", "{{.State.Running}}", id])).Trim());
        // Awaited, not .Result: a blocked pool thread per poll slows every other test on a loaded machine.
        double? dropped = null;
        try
        {
            await Eventually.True(async () =>
                (dropped = AgentScene.Series(await scene.MetricsAsync(), "eru_agent_log_lines_total", ("sink", "dead"),
                    ("outcome", "dropped"))) >= 2001 - 50,
                TimeSpan.FromSeconds(30), "the dead sink's drops counted");
        }
        catch (TimeoutException)
        {
            output.WriteLine($"dropped so far: {dropped}");
            throw;
        }
        var metrics = await scene.MetricsAsync();
        Assert.Equal(0, AgentScene.Series(metrics, "eru_agent_log_sink_up", ("sink", "dead")));
        Assert.Equal(50, AgentScene.Series(metrics, "eru_agent_log_sink_buffered", ("sink", "dead")));
    }

    [Fact]
    public async Task Eru_logs_finds_the_agent_through_the_registry_and_prints_the_tail()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();
        var deployed = await scene.DeployAsync("cli", Counter(50, stderr: false));
        var ident = (await scene.Store.GetAsync(EdgeEru.Registry.Kinds.Workloads, deployed.Instances[0].WorkloadId!))!.Value.Ident;
        await Task.Delay(1000);

        async Task<(int Code, string Out, string Err)> Logs(string target, string? token = AgentScene.Token)
        {
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            var code = await EdgeEru.Cli.LogsCommand.RunAsync(
                new EdgeEru.Cli.LogsCommand.LogsRequest(target, Follow: false, Tail: 4, Json: false, etcd.Url, scene.Prefix, token),
                stdout, stderr, CancellationToken.None);
            return (code, stdout.ToString(), stderr.ToString());
        }
        var (code, text, err) = await Logs("cli.web");
        Assert.True(code == 0, err);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.EndsWith($"web.{ident}@{scene.Node} line 46", lines[0], StringComparison.Ordinal);
        Assert.EndsWith($"web.{ident}@{scene.Node} line 49", lines[3], StringComparison.Ordinal);

        Assert.Equal(2, (await Logs("cli.web.x")).Code);
        var wrongToken = await Logs("cli", "nope");
        Assert.Equal(1, wrongToken.Code);
        Assert.Contains("401", wrongToken.Err, StringComparison.Ordinal);
        var nobody = await Logs("other");
        Assert.Equal(1, nobody.Code);
        Assert.Contains("no agent to ask", nobody.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Eru_logs_follow_picks_up_again_after_the_agent_restarts()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        var agent = await scene.StartAgentAsync();
        await scene.DeployAsync("follow", ["sh", "-c", "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.1; done"]);

        var stdout = new LineWriter();
        using var stderr = new StringWriter();
        using var stop = new CancellationTokenSource();
        var run = EdgeEru.Cli.LogsCommand.RunAsync(
            new EdgeEru.Cli.LogsCommand.LogsRequest("follow", Follow: true, Tail: 0, Json: true, etcd.Url, scene.Prefix, AgentScene.Token),
            stdout, stderr, stop.Token);
        await Eventually.True(() => stdout.Count >= 5, TimeSpan.FromSeconds(20), "live lines before the restart");

        await scene.StopAgentAsync(agent);
        var before = stdout.Count;
        await scene.StartAgentAsync();
        await Eventually.True(() => stdout.Count >= before + 5, TimeSpan.FromSeconds(30), "live lines from the restarted agent");
        await stop.CancelAsync();
        Assert.Equal(0, await run);
        Assert.Contains("opening it again", stderr.ToString(), StringComparison.Ordinal);
        Assert.All(stdout.Lines, l => Assert.Equal("follow", JsonDocument.Parse(l).RootElement.GetProperty("app").GetString()));
    }

    [Fact]
    public async Task Eru_logs_follow_joins_a_node_the_app_is_deployed_to_after_it_started()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();

        var stdout = new LineWriter();
        using var stderr = new StringWriter();
        using var stop = new CancellationTokenSource();
        // Nothing runs "late" yet: -f waits for it instead of giving up.
        var run = EdgeEru.Cli.LogsCommand.RunAsync(
            new EdgeEru.Cli.LogsCommand.LogsRequest("late", Follow: true, Tail: 0, Json: true, etcd.Url, scene.Prefix, AgentScene.Token),
            stdout, stderr, stop.Token);
        await Task.Delay(500);
        Assert.False(run.IsCompleted, "eru logs -f gave up on an app with no instance yet: " + stderr);

        await scene.DeployAsync("late", ["sh", "-c", "i=0; while true; do echo \"late $i\"; i=$((i+1)); sleep 0.1; done"]);
        await Eventually.True(() => stdout.Count >= 5, TimeSpan.FromSeconds(30),
            "lines of the instance deployed after eru logs -f started");
        await stop.CancelAsync();
        Assert.Equal(0, await run);
        Assert.Contains($"now also runs on {scene.Node}", stderr.ToString(), StringComparison.Ordinal);
        Assert.All(stdout.Lines, l => Assert.Equal("late", JsonDocument.Parse(l).RootElement.GetProperty("app").GetString()));
    }

    /// <summary>A TextWriter the test can count lines of while eru logs writes to it.</summary>
    private sealed class LineWriter : StringWriter
    {
        private readonly List<string> _lines = [];

        public int Count
        {
            get
            {
                lock (_lines) return _lines.Count;
            }
        }

        public List<string> Lines
        {
            get
            {
                lock (_lines) return [.. _lines];
            }
        }

        public override Task WriteLineAsync(string? value)
        {
            lock (_lines) _lines.Add(value ?? "");
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Output_of_a_container_this_registry_does_not_record_is_not_shipped()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();
        // Labelled like ours, but no workload record (another cluster's, or made by hand).
        var stray = (await scene.Host.DockerAsync(["run", "-d", "--network", "none", "--label", "eru.app=stray",
            "--label", "eru.entrypoint=web", DockerRig.Image, "sh", "-c", "while true; do echo stray; sleep 0.1; done"])).Trim();
        try
        {
            await scene.DeployAsync("kept", ["sh", "-c", "while true; do echo kept; sleep 0.1; done"]);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{scene.HttpPort}") };
            http.DefaultRequestHeaders.Authorization = new("Bearer", AgentScene.Token);
            string kept = "";
            await Eventually.True(async () =>
            {
                kept = await http.GetStringAsync(new Uri("/logs?app=kept&tail=5", UriKind.Relative));
                return kept.Contains("\"kept\"", StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(20), "the recorded container's lines");
            Assert.Equal("", (await http.GetStringAsync(new Uri("/logs?app=stray&tail=5", UriKind.Relative))).Trim());
        }
        finally
        {
            await scene.Host.DockerAsync(["rm", "-f", stray]);
        }
    }

    [Fact]
    public async Task The_stream_API_gives_a_tail_then_follows_and_wants_the_token()
    {
        await using var scene = new AgentScene(rig, etcd.Url, output);
        await scene.RegisterNodeAsync();
        await scene.StartAgentAsync();
        var id = (await scene.DeployAsync("stream", ["sh", "-c", "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done"]))
            .Instances[0].WorkloadId!;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{scene.HttpPort}") };

        using (var anonymous = await http.GetAsync(new Uri("/logs?app=stream", UriKind.Relative)))
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        http.DefaultRequestHeaders.Authorization = new("Bearer", AgentScene.Token);
        using (var bad = await http.GetAsync(new Uri("/logs?app=Not_An_App", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("Not_An_App", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await Task.Delay(1500); // a few lines to tail
        var tail = (await http.GetStringAsync(new Uri("/logs?app=stream&entrypoint=web&tail=3", UriKind.Relative)))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, tail.Length);
        var ticks = tail
            .Select(l => int.Parse(JsonDocument.Parse(l).RootElement.GetProperty("line").GetString()!["tick ".Length..],
                System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        Assert.Equal([ticks[0], ticks[0] + 1, ticks[0] + 2], ticks);

        // Follow one container by id prefix: the tail, an empty line, then live lines in order.
        using var resp = await http.GetAsync(new Uri($"/logs?container={id[..12]}&tail=2&follow=true", UriKind.Relative),
            HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        var lines = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (lines.Count < 6 && await reader.ReadLineAsync(cts.Token) is { } line) lines.Add(line);
        Assert.Equal("", lines[2]);
        var followed = lines.Where(l => l.Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("line").GetString()!).ToList();
        var first = int.Parse(followed[0]["tick ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(Enumerable.Range(first, 5).Select(i => $"tick {i}"), followed);
    }
}
