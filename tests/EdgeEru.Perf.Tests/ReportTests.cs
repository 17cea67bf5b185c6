using System.Globalization;
using System.Xml.Linq;
using EdgeEru.Perf.Report;
using Xunit;

namespace EdgeEru.Perf.Tests;

public class ReportTests
{
    // Real RESULT lines measured on the development machine (lb without direct_rps, as an older run printed it).
    private static readonly string[] Lines =
    [
        "==> noise before the results",
        "# measured on the 2-core development machine",
        """RESULT lb {"nginx_rps":54380,"eru_rps":30001,"rps_ratio_vs_nginx":0.552,"eru_cpu_us_per_request":22.9""" +
            ""","nginx_cpu_us_per_request":13.5,"rolling_replace_requests":356012,"rolling_replace_failed":0""" +
            ""","graph_change_p99_ms":29.6}""",
        """RESULT agent {"containers":200,"etcd_revisions_per_min":0,"agent_cpu_percent":6.1,"agent_rss_mb":179""" +
            ""","death_to_status_p50_ms":117.6,"death_to_status_p99_ms":153.8,"anchor_docker_die_event_p50_ms":49""" +
            ""","anchor_docker_die_event_p99_ms":95.2,"log_lines_per_s_at_tcp_sink":144771,"anchor_docker_logs_lines_per_s":227306""" +
            ""","log_throughput_ratio_vs_docker_logs":0.637,"log_lines_dropped":"0"}""",
        """RESULT ssh {"runs":30,"mib":1024,"eru_true_p50_ms":148.5,"eru_true_p99_ms":238,"sshd_true_p50_ms":448.3""" +
            ""","sshd_true_p99_ms":752.8,"setup_p50_ratio_vs_sshd":0.331,"eru_mib_s":50,"sshd_mib_s":47""" +
            ""","throughput_ratio_vs_sshd":1.064}""",
        """RESULT deploy {"containers":100,"deploy_s":12.5,"anchor_docker_run_s":10,"deploy_ratio_vs_docker_run":1.25}""",
        "FAILED schedule exit 2: usage: perf/run.sh NAME [options]",
        "RESULT broken {not json",
    ];

    private static PerfReport Build(out IReadOnlyList<BenchmarkOutcome> outcomes)
    {
        outcomes = ResultLines.Parse(Lines, out var problems);
        return ReportBuilder.Build(outcomes, "results.txt", new DateTimeOffset(2026, 11, 27, 4, 0, 0, TimeSpan.Zero), problems,
            ResultLines.Notes(Lines));
    }

    private static string Row(string markdown, string startsWith) =>
        markdown.Split('\n').Single(l => l.StartsWith(startsWith, StringComparison.Ordinal));

    [Fact]
    public void Parses_results_and_failures_and_names_bad_lines()
    {
        var outcomes = ResultLines.Parse(Lines, out var problems);
        Assert.Equal(["lb", "agent", "ssh", "deploy", "schedule"], outcomes.Select(o => o.Name));
        Assert.Equal(54380, outcomes[0].Number("nginx_rps"));
        Assert.Equal(0, outcomes[1].Number("log_lines_dropped")); // a string figure that holds a number
        Assert.Null(outcomes[0].Number("direct_rps"));
        Assert.Equal("exit 2: usage: perf/run.sh NAME [options]", outcomes[4].Failure);
        var problem = Assert.Single(problems);
        Assert.Contains("line 8", problem, StringComparison.Ordinal);
        Assert.Contains("broken", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_later_line_for_the_same_benchmark_wins()
    {
        var outcomes = ResultLines.Parse(["FAILED dns exit 1: knotd missing", """RESULT dns {"eru_qps":2,"knot_qps":1}"""], out _);
        var dns = Assert.Single(outcomes);
        Assert.Equal(2, dns.Number("eru_qps"));
        Assert.Null(dns.Failure);
    }

    [Fact]
    public void Table_puts_each_figure_next_to_its_anchor_with_the_ratio()
    {
        var md = Build(out _).Markdown;
        Assert.Equal("| lb | requests per second | 30,001 rps | nginx proxy_pass | 54,380 rps | 0.552 | higher | no |",
            Row(md, "| lb | requests per second | 30,001 rps | nginx"));
        Assert.Equal("| ssh | `ssh … true` p50 | 148.5 ms | OpenSSH sshd + docker exec | 448.3 ms | 0.331 | lower | yes |",
            Row(md, "| ssh | `ssh … true` p50"));
        var ratio = (144771.0 / 227306).ToString("0.###", CultureInfo.InvariantCulture);
        Assert.Contains($"| 144,771 lines/s | docker logs | 227,306 lines/s | {ratio} | higher | no |",
            Row(md, "| agent | log lines per second"), StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_and_failed_benchmarks_and_absent_keys_are_said_not_hidden()
    {
        var md = Build(out _).Markdown;
        Assert.Equal("| schedule | **failed**: exit 2: usage: perf/run.sh NAME [options] |", Row(md, "| schedule |"));
        Assert.Equal("| registry | **not run**: no RESULT line in the input |", Row(md, "| registry |"));
        Assert.Equal("| dns | **not run**: no RESULT line in the input |", Row(md, "| dns |"));
        Assert.Contains("- not shown: lb: requests per second vs backend without a proxy (direct_rps not in the RESULT line)",
            md, StringComparison.Ordinal);
        Assert.Contains("- input problem: line 8", md, StringComparison.Ordinal);
        // A RESULT line whose keys the report does not know still has its own section, and the comparisons it cannot make are said.
        Assert.Contains("- not shown: deploy: 50 containers over 4 hosts vs docker run loop (", md, StringComparison.Ordinal);
        Assert.Contains("### deploy", md, StringComparison.Ordinal);
        Assert.Contains("> measured on the 2-core development machine", md, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_are_checked()
    {
        var md = Build(out _).Markdown;
        Assert.Equal("| lb | RPS ratio vs nginx | 0.55 × | >= 1 × | **no** |", Row(md, "| lb | RPS ratio vs nginx"));
        Assert.Equal("| lb | rule graph change → routing, p99 | 29.6 ms | <= 100 ms | yes |", Row(md, "| lb | rule graph change"));
        Assert.Equal("| agent | dropped log lines | 0 lines | == 0 lines | yes |", Row(md, "| agent | dropped log lines"));
    }

    [Fact]
    public void Plots_are_svg_with_bars_in_proportion_and_absent_bars_left_out()
    {
        var report = Build(out _);
        Assert.Equal(["lb-rps.svg", "lb-cpu.svg", "agent-logs.svg", "agent-death.svg", "ssh-setup.svg", "ssh-throughput.svg"],
            report.Svgs.Keys);
        Assert.Contains("![LB: requests per second, direct vs nginx vs eru-lb (higher is better)](lb-rps.svg)",
            report.Markdown, StringComparison.Ordinal);
        Assert.Contains("*bars left out: `direct_rps` not in the RESULT line*", report.Markdown, StringComparison.Ordinal);

        var bars = Bars(report.Svgs["lb-rps.svg"]);
        Assert.Equal(["nginx", "eru-lb"], bars.Select(b => b.Series));
        Assert.DoesNotContain(">direct<", report.Svgs["lb-rps.svg"], StringComparison.Ordinal); // nor in the legend
        Assert.Equal(30001.0 / 54380, bars[1].Height / bars[0].Height, 3);
        // The axis ends at a round number above the tallest bar: 54,380 → 60,000 over the plot's height.
        Assert.Equal(54380.0 / 60000 * (SvgChart.Height - SvgChart.Top - SvgChart.Bottom), bars[0].Height, 0);

        var ssh = Bars(report.Svgs["ssh-setup.svg"]);
        Assert.Equal(4, ssh.Count);
        Assert.Equal(
            [
                ("eru-ssh", "p50", 148.5), ("sshd + docker exec", "p50", 448.3),
                ("eru-ssh", "p99", 238), ("sshd + docker exec", "p99", 752.8),
            ],
            ssh.OrderBy(b => b.Category, StringComparer.Ordinal).ThenBy(b => b.X).Select(b => (b.Series, b.Category, b.Value)));
    }

    [Fact]
    public void Svg_escapes_text_and_refuses_values_it_cannot_draw()
    {
        var svg = SvgChart.Render("a < b & \"c\"", "ms", ["x"], ["s<1>"], [new Bar("s<1>", "x", 5)]);
        var doc = XDocument.Parse(svg);
        Assert.Contains(doc.Descendants(), e => e.Value == "a < b & \"c\"");
        Assert.Throws<ArgumentException>(() => SvgChart.Render("t", "ms", ["x"], ["s"], [new Bar("s", "x", double.NaN)]));
        Assert.Throws<ArgumentException>(() => SvgChart.Render("t", "ms", ["x"], ["s"], [new Bar("s", "x", -1)]));
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0.4, 0.4)]
    [InlineData(1, 1)]
    [InlineData(1.3, 1.5)]
    [InlineData(2.2, 2.5)]
    [InlineData(30001, 40000)]
    [InlineData(54380, 60000)]
    [InlineData(752.8, 800)]
    [InlineData(227306, 250000)]
    public void Axis_ends_at_a_round_number(double max, double expected) => Assert.Equal(expected, SvgChart.NiceCeiling(max), 9);

    [Theory]
    [InlineData(800, 4)]      // 200 a step, not 160
    [InlineData(60000, 6)]    // 10,000
    [InlineData(1000, 5)]     // 200
    [InlineData(1.5, 6)]      // 0.25
    [InlineData(250000, 5)]   // 50,000
    public void Axis_steps_are_round(double max, int steps) => Assert.Equal(steps, SvgChart.Steps(max));

    private sealed record SvgBar(string Series, string Category, double Value, double X, double Height);

    private static List<SvgBar> Bars(string svg)
    {
        XNamespace ns = "http://www.w3.org/2000/svg";
        return XDocument.Parse(svg).Descendants(ns + "rect").Where(r => (string?)r.Attribute("class") == "bar")
            .Select(r => new SvgBar((string)r.Attribute("data-series")!, (string)r.Attribute("data-category")!,
                double.Parse((string)r.Attribute("data-value")!, CultureInfo.InvariantCulture),
                double.Parse((string)r.Attribute("x")!, CultureInfo.InvariantCulture),
                double.Parse((string)r.Attribute("height")!, CultureInfo.InvariantCulture)))
            .ToList();
    }
}
