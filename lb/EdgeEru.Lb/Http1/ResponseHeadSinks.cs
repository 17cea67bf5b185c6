using System.Text;

namespace EdgeEru.Lb.Http1;

/// <summary>Where a parsed response head goes: its status first, then its end-to-end headers as raw bytes.</summary>
internal interface IResponseHeadSink
{
    void Status(int status);
    void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>Nothing kept (an interim response's head).</summary>
internal struct NoHeaders : IResponseHeadSink
{
    public readonly void Status(int status) { }
    public readonly void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) { }
}

/// <summary>
/// Headers into a header dictionary (Kestrel's response), as strings made once per value (<see cref="HeaderValueCache"/>).
/// </summary>
internal readonly struct DictionaryHeaders(IHeaderDictionary headers) : IResponseHeadSink
{
    public void Status(int status) { }

    public void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var n = FieldNames.AsString(name);
        headers.Append(n, HeaderValueCache.Get(n, value));
    }
}

/// <summary>
/// The last value seen per header name, per thread: a workload sends the same Server, Content-Type and (for
/// a second) Date on every response, so those strings are made once instead of per response.
/// </summary>
internal static class HeaderValueCache
{
    private const int Slots = 16, MaxLength = 96;

    [ThreadStatic] private static Entry[]? _entries;

    private sealed class Entry
    {
        public string? Name;
        public byte[] Raw = new byte[MaxLength];
        public int Length;
        public string Value = "";
    }

    public static string Get(string name, ReadOnlySpan<byte> raw)
    {
        if (raw.Length > MaxLength) return Encoding.Latin1.GetString(raw);
        var entries = _entries ??= Enumerable.Range(0, Slots).Select(_ => new Entry()).ToArray();
        var e = entries[(name.Length * 7 + (name[0] | 0x20)) % Slots];
        if (string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase) && raw.SequenceEqual(e.Raw.AsSpan(0, e.Length))) return e.Value;
        var value = Encoding.Latin1.GetString(raw);
        e.Name = name;
        raw.CopyTo(e.Raw);
        e.Length = raw.Length;
        e.Value = value;
        return value;
    }
}
