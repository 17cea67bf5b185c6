using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace EdgeEru.Dns.Tables;

/// <summary>
/// A string-keyed map that the next table changes in O(changes), not O(size): a large frozen base and a small overlay of
/// what changed since it was made (a removal is an entry without a value). When the overlay outgrows a sixteenth of the
/// base it is folded into a new base: O(size), once per many changes. Immutable: a table being answered from never changes
/// under its readers. Looked up by span, so a query's lookup allocates nothing.
/// </summary>
internal sealed class LayeredMap<T> : IEnumerable<KeyValuePair<string, T>>
{
    private readonly Dictionary<string, T> _base;
    private readonly Dictionary<string, Entry>? _overlay;
    private readonly Dictionary<string, T>.AlternateLookup<ReadOnlySpan<char>> _baseLookup;
    private readonly Dictionary<string, Entry>.AlternateLookup<ReadOnlySpan<char>> _overlayLookup;

    private readonly record struct Entry(bool Present, T Value);

    public static readonly LayeredMap<T> Empty = new(new Dictionary<string, T>(StringComparer.Ordinal), null, 0);

    private LayeredMap(Dictionary<string, T> @base, Dictionary<string, Entry>? overlay, int count)
    {
        _base = @base;
        _overlay = overlay is { Count: > 0 } ? overlay : null;
        _baseLookup = _base.GetAlternateLookup<ReadOnlySpan<char>>();
        if (_overlay is not null) _overlayLookup = _overlay.GetAlternateLookup<ReadOnlySpan<char>>();
        Count = count;
    }

    /// <summary>A map of exactly these entries (the dictionary is taken over: the caller must not change it after).</summary>
    public static LayeredMap<T> Of(Dictionary<string, T> entries) => new(entries, null, entries.Count);

    public int Count { get; }

    /// <summary>Entries in the overlay (tests and metrics: how far from the last fold).</summary>
    public int OverlayCount => _overlay?.Count ?? 0;

    public bool TryGetValue(ReadOnlySpan<char> key, [MaybeNullWhen(false)] out T value)
    {
        if (_overlay is not null && _overlayLookup.TryGetValue(key, out var e))
        {
            value = e.Value;
            return e.Present;
        }
        return _baseLookup.TryGetValue(key, out value);
    }

    public bool ContainsKey(ReadOnlySpan<char> key) => TryGetValue(key, out _);

    public T? GetValueOrDefault(string key) => TryGetValue(key, out var v) ? v : default;

    public T this[string key] => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException(key);

    /// <summary>
    /// The map with <paramref name="changes"/> made: a key set to a value, or removed where <c>Present</c> is false.
    /// </summary>
    public LayeredMap<T> With(IEnumerable<(string Key, bool Present, T Value)> changes)
    {
        var overlay = _overlay is null
            ? new Dictionary<string, Entry>(StringComparer.Ordinal)
            : new Dictionary<string, Entry>(_overlay, StringComparer.Ordinal);
        var count = Count;
        var any = false;
        foreach (var (key, present, value) in changes)
        {
            any = true;
            var had = ContainsKey(key);
            count += (present ? 1 : 0) - (had ? 1 : 0);
            if (!present && !_base.ContainsKey(key)) overlay.Remove(key); // nothing below it to hide
            else overlay[key] = new Entry(present, value);
        }
        if (!any) return this;
        if (overlay.Count <= 64 + _base.Count / 16) return new LayeredMap<T>(_base, overlay, count);
        // Fold: a new base of every entry, the overlay applied.
        var folded = new Dictionary<string, T>(_base, StringComparer.Ordinal);
        foreach (var (key, e) in overlay)
            if (e.Present) folded[key] = e.Value;
            else folded.Remove(key);
        return new LayeredMap<T>(folded, null, folded.Count);
    }

    public IEnumerator<KeyValuePair<string, T>> GetEnumerator()
    {
        foreach (var kv in _base)
            if (_overlay is null || !_overlay.ContainsKey(kv.Key)) yield return kv;
        if (_overlay is null) yield break;
        foreach (var (key, e) in _overlay)
            if (e.Present) yield return new KeyValuePair<string, T>(key, e.Value);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
