using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EdgeEru.Registry.Serialization;

/// <summary>
/// Dedupes the low-cardinality strings of registry values (app, node, image, tag, label, network names)
/// so that 100k workloads share one copy of each. Bounded: past its capacity it stops adding and the
/// decoder allocates as usual, so a registry full of unique values cannot grow it without limit.
/// </summary>
public sealed class StringPool
{
    public static readonly StringPool Shared = new(capacity: 65_536, maxLength: 128);

    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int _capacity;
    private readonly int _maxLength;

    public StringPool(int capacity, int maxLength)
    {
        _capacity = capacity;
        _maxLength = maxLength;
        _lookup = _strings.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    private int _count; // ConcurrentDictionary.Count takes every lock: keep our own

    public int Count => Volatile.Read(ref _count);

    public string Get(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName))
            throw new JsonException($"expected a string, found {reader.TokenType}");
        var byteLength = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (byteLength > _maxLength || reader.ValueIsEscaped || reader.HasValueSequence)
            return reader.GetString()!;
        Span<char> chars = stackalloc char[_maxLength];
        var n = Encoding.UTF8.GetChars(reader.ValueSpan, chars);
        return Get(chars[..n]);
    }

    public string Get(ReadOnlySpan<char> value)
    {
        if (_lookup.TryGetValue(value, out var existing)) return existing;
        var s = value.ToString();
        if (value.Length > _maxLength || Count >= _capacity) return s;
        var shared = _strings.GetOrAdd(s, s);
        if (ReferenceEquals(shared, s)) Interlocked.Increment(ref _count);
        return shared;
    }
}

/// <summary>A string property whose values repeat across records (see <see cref="StringPool"/>).</summary>
public sealed class PooledStringConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : StringPool.Shared.Get(ref reader);

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value);
}

/// <summary>A list of repeating strings (tags, network names).</summary>
public sealed class PooledStringArrayConverter : JsonConverter<string[]>
{
    public override string[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return [];
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("expected an array of strings");
        var items = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            items.Add(StringPool.Shared.Get(ref reader));
        return items.Count == 0 ? [] : InternPool<string[]>.Get([.. items]);
    }

    public override void Write(Utf8JsonWriter writer, string[] value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var s in value) writer.WriteStringValue(s);
        writer.WriteEndArray();
    }
}
