namespace EdgeEru.Core.Scheduling;

/// <summary>
/// The <c>count</c> smallest keys offered, with their nodes, in one pass (a bounded heap, largest on top): a
/// strategy whose turns each take the smallest key and may put that node back with a larger one takes, in its
/// first count turns, only nodes among them; so its heap can start from these instead of every node.
/// </summary>
internal sealed class SmallestKeys<TKey> where TKey : struct, IComparable<TKey>
{
    private readonly int _count;
    private readonly List<(int, TKey)>? _all;
    private readonly PriorityQueue<int, TKey>? _largestFirst;
    private TKey _largest;

    /// <param name="count">How many to keep (int.MaxValue: all).</param>
    /// <param name="offers">How many will be offered at most (to size the storage).</param>
    public SmallestKeys(int count, int offers)
    {
        _count = count;
        if (count >= offers) _all = new List<(int, TKey)>(offers);
        else _largestFirst = new PriorityQueue<int, TKey>(count + 1, Comparer<TKey>.Create((a, b) => b.CompareTo(a)));
    }

    public void Offer(int node, TKey key)
    {
        if (_all is not null)
        {
            _all.Add((node, key));
            return;
        }
        if (_count == 0) return;
        if (_largestFirst!.Count < _count) _largestFirst.Enqueue(node, key);
        else if (key.CompareTo(_largest) < 0) _largestFirst.EnqueueDequeue(node, key);
        else return;
        _largestFirst.TryPeek(out _, out _largest);
    }

    /// <summary>The kept nodes and keys, in no particular order.</summary>
    public IEnumerable<(int, TKey)> Entries => _all ?? (IEnumerable<(int, TKey)>)[.. _largestFirst!.UnorderedItems];
}
