using System.Globalization;
using System.Text;

namespace EdgeEru.Perf.Report;

/// <summary>One bar: its series, its category, its value.</summary>
public sealed record Bar(string Series, string Category, double Value);

/// <summary>
/// A grouped bar chart as a standalone SVG document: one group per category, one coloured bar per series,
/// the value written over each bar, a y axis from 0 to a round number. No plotting dependency: the
/// benchmarks' plots are a few bars each.
/// </summary>
public static class SvgChart
{
    public const int Width = 720;
    public const int Height = 400;
    public const int Left = 90;
    public const int Right = 20;
    public const int Top = 50;
    public const int Bottom = 90;

    private static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"];

    public static string Render(
        string title, string unit, IReadOnlyList<string> categories, IReadOnlyList<string> series, IReadOnlyList<Bar> bars)
    {
        foreach (var b in bars)
            if (!double.IsFinite(b.Value) || b.Value < 0)
                throw new ArgumentException($"bar {b.Series}/{b.Category}: {b.Value} is not a finite value >= 0");
        var max = NiceCeiling(bars.Count == 0 ? 1 : bars.Max(b => b.Value));
        var plotW = Width - Left - Right;
        var plotH = Height - Top - Bottom;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"""<svg xmlns="http://www.w3.org/2000/svg" width="{Width}" height="{Height}" viewBox="0 0 {Width} {Height}" """ +
            $"""font-family="sans-serif" font-size="12">""").Append('\n');
        svg.Append(CultureInfo.InvariantCulture, $"""<rect width="{Width}" height="{Height}" fill="white"/>""").Append('\n');
        svg.Append(CultureInfo.InvariantCulture,
            $"""<text x="{Width / 2}" y="24" text-anchor="middle" font-size="14" font-weight="bold">""" +
            $"""{Escape(title)}</text>""").Append('\n');

        // y axis from 0 to max in round steps, with grid lines.
        var steps = Steps(max);
        for (var i = 0; i <= steps; i++)
        {
            var v = max * i / steps;
            var y = Top + plotH - plotH * i / (double)steps;
            svg.Append(CultureInfo.InvariantCulture,
                $"""<line x1="{Left}" y1="{F(y)}" x2="{Width - Right}" y2="{F(y)}" stroke="#ddd"/>""").Append('\n');
            svg.Append(CultureInfo.InvariantCulture,
                $"""<text x="{Left - 6}" y="{F(y + 4)}" text-anchor="end">{Escape(Format(v))}</text>""").Append('\n');
        }
        svg.Append(CultureInfo.InvariantCulture,
            $"""<text x="16" y="{F(Top + plotH / 2.0)}" text-anchor="middle" transform="rotate(-90 16 {F(Top + plotH / 2.0)})">""" +
            $"""{Escape(unit)}</text>""").Append('\n');
        svg.Append(CultureInfo.InvariantCulture,
            $"""<line x1="{Left}" y1="{Top + plotH}" x2="{Width - Right}" y2="{Top + plotH}" stroke="#333"/>""").Append('\n');

        // Bars: each category gets an equal slot; its bars share 70% of it.
        var slot = plotW / (double)Math.Max(1, categories.Count);
        var barW = slot * 0.7 / Math.Max(1, series.Count);
        for (var c = 0; c < categories.Count; c++)
        {
            var x0 = Left + slot * c + slot * 0.15;
            for (var s = 0; s < series.Count; s++)
            {
                var bar = bars.FirstOrDefault(b => b.Category == categories[c] && b.Series == series[s]);
                if (bar is null) continue;
                var h = plotH * bar.Value / max;
                var x = x0 + barW * s;
                var y = Top + plotH - h;
                svg.Append(CultureInfo.InvariantCulture,
                    $"""<rect class="bar" data-series="{Escape(bar.Series)}" data-category="{Escape(bar.Category)}" """ +
                    $"""data-value="{bar.Value.ToString("R", CultureInfo.InvariantCulture)}" x="{F(x + 2)}" y="{F(y)}" """ +
                    $"""width="{F(barW - 4)}" height="{F(h)}" fill="{Palette[s % Palette.Length]}"/>""").Append('\n');
                svg.Append(CultureInfo.InvariantCulture, $"""<text x="{F(x + barW / 2)}" y="{F(y - 4)}" text-anchor="middle">""" +
                    $"""{Escape(Format(bar.Value))}</text>""").Append('\n');
            }
            svg.Append(CultureInfo.InvariantCulture,
                $"""<text x="{F(Left + slot * c + slot / 2)}" y="{Top + plotH + 18}" text-anchor="middle">""" +
                $"""{Escape(categories[c])}</text>""").Append('\n');
        }

        // Legend under the axis.
        var lx = (double)Left;
        var ly = Height - 30;
        for (var s = 0; s < series.Count; s++)
        {
            svg.Append(CultureInfo.InvariantCulture,
                $"""<rect x="{F(lx)}" y="{ly - 10}" width="12" height="12" fill="{Palette[s % Palette.Length]}"/>""").Append('\n');
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{F(lx + 16)}" y="{ly}">{Escape(series[s])}</text>""").Append('\n');
            lx += 16 + 7.5 * series[s].Length + 24;
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>
    /// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) at least <paramref name="v"/> (1 for 0).
    /// </summary>
    public static double NiceCeiling(double v)
    {
        if (v <= 0) return 1;
        var pow = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (var m in new[] { 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10 })
            if (m * pow >= v * (1 - 1e-12)) return m * pow;
        return 10 * pow;
    }

    /// <summary>
    /// How many steps divide 0..<paramref name="max"/> into round ones (1, 2, 2.5 or 5 times a power of ten); 5 when none does.
    /// </summary>
    public static int Steps(double max)
    {
        foreach (var n in new[] { 5, 4, 6, 3, 8 })
        {
            var step = max / n;
            var pow = Math.Pow(10, Math.Floor(Math.Log10(step)));
            var m = step / pow;
            if (new[] { 1, 2, 2.5, 5, 10 }.Any(r => Math.Abs(m - r) < 1e-9)) return n;
        }
        return 5;
    }

    /// <summary>Thousands separated above 1000, up to two decimals below.</summary>
    public static string Format(double v) =>
        Math.Abs(v) >= 1000 ? v.ToString("#,0", CultureInfo.InvariantCulture) : v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);

    private static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal)
        .Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal)
        .Replace("\"", "&quot;", StringComparison.Ordinal);
}
