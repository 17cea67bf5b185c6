using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeEru.Registry.Serialization;

namespace EdgeEru.Registry.Model;

/// <summary>
/// A small immutable string→string map (labels, networks) kept as one sorted array.
/// A registry holds 100k+ of these, and a Dictionary costs ~200 bytes even when empty.
/// Serialized as a plain JSON object.
/// </summary>
[JsonConverter(typeof(StringMapConverter))]
public sealed class StringMap : IReadOnlyDictionary<string, string>, IEquatable<StringMap>
{
    public static readonly StringMap Empty = new([]);

    private readonly KeyValuePair<string, string>[] _items;

    private StringMap(KeyValuePair<string, string>[] sortedItems) => _items = sortedItems;

    public static StringMap From(IEnumerable<KeyValuePair<string, string>> items)
    {
        var list = new List<KeyValuePair<string, string>>(items);
        if (list.Count == 0) return Empty;
        list.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        // Last write wins for duplicate keys, as in a JSON object.
        var dedup = new List<KeyValuePair<string, string>>(list.Count);
        foreach (var kv in list)
        {
            if (dedup.Count > 0 && dedup[^1].Key == kv.Key) dedup[^1] = kv;
            else dedup.Add(kv);
        }
        return new StringMap([.. dedup]);
    }

    public static StringMap Of(params (string Key, string Value)[] items) =>
        From(items.Select(i => new KeyValuePair<string, string>(i.Key, i.Value)));

    public int Count => _items.Length;

    public string this[string key] => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException(key);

    public IEnumerable<string> Keys => _items.Select(i => i.Key);
    public IEnumerable<string> Values => _items.Select(i => i.Value);

    public bool ContainsKey(string key) => IndexOf(key) >= 0;

    public bool TryGetValue(string key, [MaybeNullWhen(false)] out string value)
    {
        var i = IndexOf(key);
        if (i < 0) { value = null; return false; }
        value = _items[i].Value;
        return true;
    }

    private int IndexOf(string key)
    {
        int lo = 0, hi = _items.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var c = string.CompareOrdinal(_items[mid].Key, key);
            if (c == 0) return mid;
            if (c < 0) lo = mid + 1; else hi = mid - 1;
        }
        return -1;
    }

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, string>>)_items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool Equals(StringMap? other) =>
        other is not null && (ReferenceEquals(this, other) || _items.AsSpan().SequenceEqual(other._items));
    public override bool Equals(object? obj) => Equals(obj as StringMap);
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var kv in _items) { h.Add(kv.Key); h.Add(kv.Value); }
        return h.ToHashCode();
    }
    public override string ToString() => "{" + string.Join(", ", _items.Select(i => $"{i.Key}={i.Value}")) + "}";
}

/// <summary>Labels and the like: keys and values repeat across records, so both are pooled and equal maps shared.</summary>
public sealed class StringMapConverter : JsonConverter<StringMap>
{
    public override StringMap Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        InternPool<StringMap>.Get(ReadMap(ref reader, poolValues: true));

    internal static StringMap ReadMap(ref Utf8JsonReader reader, bool poolValues)
    {
        if (reader.TokenType == JsonTokenType.Null) return StringMap.Empty;
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("expected an object of strings");
        var items = new List<KeyValuePair<string, string>>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = StringPool.Shared.Get(ref reader);
            reader.Read();
            if (reader.TokenType != JsonTokenType.String) throw new JsonException($"value of \"{key}\" must be a string");
            items.Add(new(key, poolValues ? StringPool.Shared.Get(ref reader) : reader.GetString()!));
        }
        return StringMap.From(items);
    }

    public override void Write(Utf8JsonWriter writer, StringMap value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var kv in value) writer.WriteString(kv.Key, kv.Value);
        writer.WriteEndObject();
    }
}

/// <summary>Network → address maps: addresses are unique per workload, so only the network names are pooled.</summary>
public sealed class AddressMapConverter : JsonConverter<StringMap>
{
    public override StringMap Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        StringMapConverter.ReadMap(ref reader, poolValues: false);

    public override void Write(Utf8JsonWriter writer, StringMap value, JsonSerializerOptions options) =>
        new StringMapConverter().Write(writer, value, options);
}
