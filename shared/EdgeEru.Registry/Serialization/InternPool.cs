using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace EdgeEru.Registry.Serialization;

/// <summary>
/// Shares equal sub-values between records: the workloads of one app carry the same tags, labels,
/// ports, resources and health check, and a snapshot of 100k workloads should hold each once.
/// Bounded like <see cref="StringPool"/>. Shared values are immutable by contract: never mutate
/// an array read from the registry.
/// </summary>
public static class InternPool<T> where T : class
{
    private const int Capacity = 65_536;

    // Arrays compare by content here (their own Equals is by reference).
    private static readonly ConcurrentDictionary<T, T> Pool = new(typeof(T).IsArray
        ? (IEqualityComparer<T>)Activator.CreateInstance(typeof(ArrayComparer<>).MakeGenericType(typeof(T).GetElementType()!))!
        : EqualityComparer<T>.Default);

    private static int _count; // ConcurrentDictionary.Count takes every lock: keep our own

    public static T Get(T value)
    {
        if (Pool.TryGetValue(value, out var shared)) return shared;
        if (Volatile.Read(ref _count) >= Capacity) return value;
        shared = Pool.GetOrAdd(value, value);
        if (ReferenceEquals(shared, value)) Interlocked.Increment(ref _count);
        return shared;
    }
}

internal sealed class ArrayComparer<TItem> : IEqualityComparer<TItem[]>
{
    public bool Equals(TItem[]? x, TItem[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

    public int GetHashCode(TItem[] obj)
    {
        var h = new HashCode();
        foreach (var item in obj) h.Add(item);
        return h.ToHashCode();
    }
}

/// <summary>Reads a value with the context's own contract, then returns the shared equal instance.</summary>
public sealed class InterningConverter<T> : JsonConverter<T> where T : class
{
    public override T? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var info = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
        var value = JsonSerializer.Deserialize(ref reader, info);
        return value is null ? null : InternPool<T>.Get(value);
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T)));
}
