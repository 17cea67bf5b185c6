using EdgeEru.Registry.Snapshot;
using Xunit;

namespace EdgeEru.Registry.Tests;

using Set = PersistentSortedSet<string, SelfKey>;

public class PersistentSortedSetTests
{
    /// <summary>
    /// Property: random inserts/removes match a SortedSet model, in order, by index and by key; old versions never change.
    /// </summary>
    [Theory]
    [InlineData(1, 50, 200)]
    [InlineData(2, 5_000, 20_000)]   // deep enough for three levels
    [InlineData(3, 300, 5_000)]
    public void Matches_a_sorted_set_model_and_stays_persistent(int seed, int keySpace, int ops)
    {
        var rnd = new Random(seed);
        var model = new SortedSet<string>(StringComparer.Ordinal);
        var set = default(Set);
        Set? frozen = null;
        string[]? frozenItems = null;
        for (var i = 0; i < ops; i++)
        {
            var key = "k" + rnd.Next(keySpace).ToString("D6");
            if (rnd.Next(3) == 0)
            {
                model.Remove(key);
                set = set.Remove(key);
            }
            else
            {
                model.Add(key);
                set = set.SetItem(key);
            }
            if (i == ops / 2)
            {
                frozen = set;
                frozenItems = [.. set];
            }
        }
        Assert.Equal(model.Count, set.Count);
        Assert.Equal(model, set.ToList());
        var expected = model.ToList();
        for (var i = 0; i < expected.Count; i += Math.Max(1, expected.Count / 97)) Assert.Equal(expected[i], set[i]);
        foreach (var k in expected.Take(200)) Assert.True(set.ContainsKey(k));
        Assert.False(set.ContainsKey("absent"));
        Assert.Equal(frozenItems, frozen!.Value.ToList());
    }

    [Fact]
    public void Built_from_sorted_items_it_behaves_as_if_inserted_one_by_one()
    {
        var items = Enumerable.Range(0, 10_000).Select(i => $"w{i:D6}").ToList();
        var set = Set.FromSorted(items);
        Assert.Equal(items, set.ToList());
        Assert.Equal("w004321", set[4321]);
        set = set.Remove("w000000").SetItem("w999999").Remove("nope");
        Assert.Equal(10_000, set.Count);
        Assert.Equal("w000001", set[0]);
        Assert.Equal("w999999", set[^1]);
        var emptied = items.Aggregate(set.Remove("w999999"), (s, k) => s.Remove(k));
        Assert.True(emptied.IsEmpty);
        Assert.Empty(emptied);
    }

    [Fact]
    public void Prefix_lookups_find_keys_anywhere_in_a_deep_tree()
    {
        var keys = Enumerable.Range(0, 5000).Select(i => $"198.18.{i / 250}.{i % 250}").Order(StringComparer.Ordinal).ToList();
        var set = Set.FromSorted(keys);
        foreach (var k in keys.Where((_, i) => i % 97 == 0))
        {
            Assert.True(set.HasKeyWithPrefix(k));
            Assert.True(set.HasKeyWithPrefix(k.AsSpan(0, k.Length - 1)));
        }
        Assert.True(set.HasKeyWithPrefix("198.18.19."));
        Assert.False(set.HasKeyWithPrefix("198.18.20."));
        Assert.False(set.HasKeyWithPrefix("198.19."));
        Assert.False(set.HasKeyWithPrefix("zzz"));
        Assert.True(set.HasKeyWithPrefix(""));
        Assert.False(default(Set).HasKeyWithPrefix("1"));
    }
}
