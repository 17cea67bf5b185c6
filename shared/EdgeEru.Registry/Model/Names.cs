using System.Buffers;
using System.Runtime.CompilerServices;

namespace EdgeEru.Registry.Model;

/// <summary>Rules for the names that appear in registry keys, DNS names and SSH targets.</summary>
public static class Names
{
    private static readonly SearchValues<char> LabelChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-");
    private static readonly SearchValues<char> IdChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");

    /// <summary>A DNS label (RFC 1123): pods, nodes, apps, entrypoints, idents and tags become parts of DNS names.</summary>
    public static bool IsLabel(string? s) =>
        !string.IsNullOrEmpty(s) && s.Length <= 63 && !s.AsSpan().ContainsAnyExcept(LabelChars)
        && s[0] != '-' && s[^1] != '-';

    /// <summary>Identifiers that only appear in keys (workload ids, names): no '/', no whitespace.</summary>
    public static bool IsId(string? s) =>
        !string.IsNullOrEmpty(s) && s.Length <= 253 && !s.AsSpan().ContainsAnyExcept(IdChars) && s is not ("." or "..");

    /// <summary>A host name, optionally with one leading wildcard label ("*.example.com").</summary>
    public static bool IsDomain(string? s)
    {
        if (string.IsNullOrEmpty(s) || s.Length > 253) return false;
        var labels = s.Split('.');
        for (var i = 0; i < labels.Length; i++)
        {
            if (i == 0 && labels[i] == "*" && labels.Length > 1) continue;
            if (!IsLabel(labels[i])) return false;
        }
        return true;
    }

    /// <summary>A login name as OpenSSH accepts it.</summary>
    public static bool IsUser(string? s) =>
        !string.IsNullOrEmpty(s) && s.Length <= 32 && (char.IsAsciiLetterLower(s[0]) || s[0] == '_')
        && !s.AsSpan().ContainsAnyExcept(IdChars) && !s.Any(char.IsAsciiLetterUpper);

    /// <summary>Adds <paramref name="message"/> when <paramref name="ok"/> is false; the message is only formatted then.</summary>
    internal static void Require(List<string> errors, bool ok, [InterpolatedStringHandlerArgument("ok")] ref ProblemMessage message)
    {
        if (!ok) errors.Add(message.ToStringAndClear());
    }
}

/// <summary>An interpolated message formatted only when its check failed: validation runs on every decode.</summary>
[InterpolatedStringHandler]
internal ref struct ProblemMessage
{
    private DefaultInterpolatedStringHandler _inner;

    public ProblemMessage(int literalLength, int formattedCount, bool ok, out bool shouldAppend)
    {
        shouldAppend = !ok;
        _inner = ok ? default : new DefaultInterpolatedStringHandler(literalLength, formattedCount);
    }

    public void AppendLiteral(string value) => _inner.AppendLiteral(value);
    public void AppendFormatted<T>(T value) => _inner.AppendFormatted(value);
    public void AppendFormatted(string? value) => _inner.AppendFormatted(value);
    public string ToStringAndClear() => _inner.ToStringAndClear();
}
