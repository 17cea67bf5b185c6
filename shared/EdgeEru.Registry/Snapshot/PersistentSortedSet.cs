using System.Collections;
using System.Diagnostics;

namespace EdgeEru.Registry.Snapshot;

/// <summary>How a <see cref="PersistentSortedSet{T, TKeyOf}"/> finds an item's key.</summary>
public interface IKeyOf<in T>
{
    static abstract string Key(T item);
}

/// <summary>
/// An immutable set of items sorted by a string key (ordinal), as a B-tree of small arrays: every
/// update copies one path of at most <see cref="Fanout"/>-wide nodes, so it costs O(log n) whatever
/// the set's size, and an item costs ~9 bytes. Indexable (for rotation) and enumerable in key order.
/// A leaf is a plain T[]; an inner node is <see cref="Inner"/>. Default is the empty set.
/// </summary>
public readonly struct PersistentSortedSet<T, TKeyOf> : IReadOnlyList<T>
    where T : class
    where TKeyOf : IKeyOf<T>
{
    internal const int Fanout = 64;

    private readonly object? _root; // null, T[] (leaf) or Inner

    private PersistentSortedSet(object? root) => _root = root;

    public int Count => _root switch
    {
        null => 0,
        T[] leaf => leaf.Length,
        Inner inner => inner.Count,
        _ => throw new UnreachableException(),
    };

    public bool IsEmpty => _root is null;

    public T this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
            var node = _root;
            while (node is Inner inner)
            {
                var i = 0;
                while (index >= inner.Children[i].Count) index -= inner.Children[i++].Count;
                node = inner.Children[i].Node;
            }
            return ((T[])node!)[index];
        }
    }

    /// <summary>The item with this key; KeyNotFoundException if none.</summary>
    public T this[string key] => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException(key);

    public bool TryGetValue(string key, out T item)
    {
        var node = _root;
        while (node is Inner inner) node = inner.Children[inner.ChildFor(key)].Node;
        if (node is T[] leaf)
        {
            var i = Find(leaf, key);
            if (i >= 0)
            {
                item = leaf[i];
                return true;
            }
        }
        item = null!;
        return false;
    }

    public T? GetValueOrDefault(string key) => TryGetValue(key, out var v) ? v : null;

    /// <summary>Lookup by a key that is not a string yet (a name parsed from a packet): no allocation.</summary>
    public bool TryGetValue(ReadOnlySpan<char> key, out T item)
    {
        var node = _root;
        while (node is Inner inner) node = inner.Children[inner.ChildFor(key)].Node;
        if (node is T[] leaf)
        {
            int lo = 0, hi = leaf.Length - 1;
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                var c = TKeyOf.Key(leaf[mid]).AsSpan().CompareTo(key, StringComparison.Ordinal);
                if (c == 0)
                {
                    item = leaf[mid];
                    return true;
                }
                if (c < 0) lo = mid + 1; else hi = mid - 1;
            }
        }
        item = null!;
        return false;
    }

    /// <summary>Whether any key starts with <paramref name="prefix"/> (keys sharing a prefix sit together in order).</summary>
    public bool HasKeyWithPrefix(ReadOnlySpan<char> prefix) =>
        _root is not null && LowerBound(_root, prefix) is { } key && key.AsSpan().StartsWith(prefix, StringComparison.Ordinal);

    /// <summary>The first key at or after <paramref name="key"/>, or null.</summary>
    private static string? LowerBound(object node, ReadOnlySpan<char> key)
    {
        if (node is T[] leaf)
        {
            int lo = 0, hi = leaf.Length - 1;
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                if (TKeyOf.Key(leaf[mid]).AsSpan().CompareTo(key, StringComparison.Ordinal) < 0) lo = mid + 1; else hi = mid - 1;
            }
            return lo < leaf.Length ? TKeyOf.Key(leaf[lo]) : null;
        }
        var inner = (Inner)node;
        var c = inner.ChildFor(key);
        return LowerBound(inner.Children[c].Node, key) ?? (c + 1 < inner.Children.Length ? inner.Children[c + 1].FirstKey : null);
    }

    /// <summary>True when both are the very same version (unchanged between two snapshots).</summary>
    public bool IsSameAs(PersistentSortedSet<T, TKeyOf> other) => ReferenceEquals(_root, other._root);

    public bool ContainsKey(string key) => TryGetValue(key, out _);

    /// <summary>A set with <paramref name="item"/> added, or replacing the item with the same key.</summary>
    public PersistentSortedSet<T, TKeyOf> SetItem(T item)
    {
        if (_root is null) return new(new T[] { item });
        var (a, b) = Set(_root, item);
        return new(b is null ? a.Node : new Inner([a, b.Value]));
    }

    /// <summary>A set without the item of <paramref name="key"/> (this set if there is none).</summary>
    public PersistentSortedSet<T, TKeyOf> Remove(string key)
    {
        if (_root is null) return this;
        var (node, removed) = Without(_root, key);
        if (!removed) return this;
        // Collapse a root left with a single child.
        while (node is Inner { Children.Length: 1 } single) node = single.Children[0].Node;
        return new(node);
    }

    /// <summary>Builds a set from items already sorted by key with no duplicates (the full build).</summary>
    public static PersistentSortedSet<T, TKeyOf> FromSorted(IReadOnlyList<T> sorted)
    {
        if (sorted.Count == 0) return default;
        // Leaves filled to 3/4 so that the first inserts after a build do not all split.
        const int fill = Fanout * 3 / 4;
        var level = new List<Child>();
        for (var i = 0; i < sorted.Count; i += fill)
        {
            var leaf = new T[Math.Min(fill, sorted.Count - i)];
            for (var j = 0; j < leaf.Length; j++) leaf[j] = sorted[i + j];
            level.Add(new Child(leaf));
        }
        while (level.Count > 1)
        {
            var up = new List<Child>();
            for (var i = 0; i < level.Count; i += fill)
                up.Add(new Child(new Inner([.. level.Skip(i).Take(fill)])));
            level = up;
        }
        return new(level[0].Node);
    }

    public Enumerator GetEnumerator() => new(_root);
    IEnumerator<T> IEnumerable<T>.GetEnumerator() => GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static int Find(T[] leaf, string key)
    {
        int lo = 0, hi = leaf.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var c = string.CompareOrdinal(TKeyOf.Key(leaf[mid]), key);
            if (c == 0) return mid;
            if (c < 0) lo = mid + 1; else hi = mid - 1;
        }
        return ~lo;
    }

    private static (Child, Child?) Set(object node, T item)
    {
        var key = TKeyOf.Key(item);
        if (node is T[] leaf)
        {
            var i = Find(leaf, key);
            T[] next;
            if (i >= 0)
            {
                next = (T[])leaf.Clone();
                next[i] = item;
                return (new Child(next), null);
            }
            i = ~i;
            next = new T[leaf.Length + 1];
            Array.Copy(leaf, next, i);
            next[i] = item;
            Array.Copy(leaf, i, next, i + 1, leaf.Length - i);
            if (next.Length <= Fanout) return (new Child(next), null);
            var half = next.Length / 2;
            return (new Child(next[..half]), new Child(next[half..]));
        }
        var inner = (Inner)node;
        var c = inner.ChildFor(key);
        var (a, b) = Set(inner.Children[c].Node, item);
        Child[] children;
        if (b is null)
        {
            children = (Child[])inner.Children.Clone();
            children[c] = a;
        }
        else
        {
            children = new Child[inner.Children.Length + 1];
            Array.Copy(inner.Children, children, c);
            children[c] = a;
            children[c + 1] = b.Value;
            Array.Copy(inner.Children, c + 1, children, c + 2, inner.Children.Length - c - 1);
        }
        if (children.Length <= Fanout) return (new Child(new Inner(children)), null);
        var h = children.Length / 2;
        return (new Child(new Inner(children[..h])), new Child(new Inner(children[h..])));
    }

    private static (object? Node, bool Removed) Without(object node, string key)
    {
        if (node is T[] leaf)
        {
            var i = Find(leaf, key);
            if (i < 0) return (leaf, false);
            if (leaf.Length == 1) return (null, true);
            var next = new T[leaf.Length - 1];
            Array.Copy(leaf, next, i);
            Array.Copy(leaf, i + 1, next, i, leaf.Length - i - 1);
            return (next, true);
        }
        var inner = (Inner)node;
        var c = inner.ChildFor(key);
        var (child, removed) = Without(inner.Children[c].Node, key);
        if (!removed) return (inner, false);
        Child[] children;
        if (child is null)
        {
            if (inner.Children.Length == 1) return (null, true);
            children = new Child[inner.Children.Length - 1];
            Array.Copy(inner.Children, children, c);
            Array.Copy(inner.Children, c + 1, children, c, inner.Children.Length - c - 1);
        }
        else
        {
            // Underfull nodes are allowed (no merging): depth only grows by splits, so it stays O(log n).
            children = (Child[])inner.Children.Clone();
            children[c] = new Child(child);
        }
        return (new Inner(children), true);
    }

    /// <summary>A child node with its item count and first key (for routing and indexing).</summary>
    internal readonly struct Child
    {
        public Child(object node)
        {
            Node = node;
            if (node is T[] leaf)
            {
                Count = leaf.Length;
                FirstKey = TKeyOf.Key(leaf[0]);
            }
            else
            {
                var inner = (Inner)node;
                Count = inner.Count;
                FirstKey = inner.Children[0].FirstKey;
            }
        }

        public object Node { get; }
        public int Count { get; }
        public string FirstKey { get; }
    }

    internal sealed class Inner
    {
        public Inner(Child[] children)
        {
            Children = children;
            foreach (var c in children) Count += c.Count;
        }

        public Child[] Children { get; }
        public int Count { get; }

        /// <summary>The last child whose first key is at or before <paramref name="key"/> (or the first).</summary>
        public int ChildFor(ReadOnlySpan<char> key)
        {
            int lo = 1, hi = Children.Length - 1, result = 0;
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                if (Children[mid].FirstKey.AsSpan().CompareTo(key, StringComparison.Ordinal) <= 0)
                {
                    result = mid;
                    lo = mid + 1;
                }
                else hi = mid - 1;
            }
            return result;
        }
    }

    public struct Enumerator : IEnumerator<T>
    {
        private readonly object? _root;
        private Stack<(Inner Node, int Next)>? _path;
        private T[]? _leaf;
        private int _index;

        internal Enumerator(object? root)
        {
            _root = root;
            _path = null;
            _leaf = null;
            _index = -1;
            Current = null!;
        }

        public T Current { get; private set; }
        readonly object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            if (_leaf is null && _index == -1)
            {
                _index = 0;
                if (_root is null) return false;
                Descend(_root);
            }
            while (true)
            {
                if (_leaf is not null && _index < _leaf.Length)
                {
                    Current = _leaf[_index++];
                    return true;
                }
                if (_path is null || _path.Count == 0) return false;
                var (node, next) = _path.Pop();
                if (next < node.Children.Length)
                {
                    _path.Push((node, next + 1));
                    Descend(node.Children[next].Node);
                }
            }
        }

        private void Descend(object node)
        {
            while (node is Inner inner)
            {
                (_path ??= new()).Push((inner, 1));
                node = inner.Children[0].Node;
            }
            _leaf = (T[])node;
            _index = 0;
        }

        public void Reset() => throw new NotSupportedException();
        public readonly void Dispose() { }
    }
}
