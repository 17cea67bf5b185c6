using EdgeEru.Core.Scheduling;
using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>The bounded heap AUTO and GLOBAL start from: exactly the count smallest keys offered.</summary>
public class SmallestKeysTests
{
    [Fact]
    public void Keeps_the_count_smallest_keys_with_their_nodes()
    {
        for (var seed = 0; seed < 500; seed++)
        {
            var rnd = new Random(seed);
            var offers = rnd.Next(0, 200);
            var count = rnd.Next(1, 250);
            // Few distinct keys: ties are broken by the node, as the strategies' keys do (they end in the index).
            var keys = Enumerable.Range(0, offers).Select(i => (Node: i, Key: (rnd.Next(10), i))).ToList();
            var smallest = new SmallestKeys<(int, int)>(count, offers);
            foreach (var (node, key) in keys.OrderBy(_ => rnd.Next())) smallest.Offer(node, key);
            var expected = keys.OrderBy(k => k.Key).Take(count).Select(k => (k.Node, k.Key)).ToList();
            Assert.Equal(expected, smallest.Entries.OrderBy(e => e.Item2).ToList());
        }
    }

    [Fact]
    public void Keeps_every_key_when_asked_for_all()
    {
        var all = new SmallestKeys<int>(int.MaxValue, 3);
        all.Offer(0, 5);
        all.Offer(1, 1);
        all.Offer(2, 3);
        Assert.Equal([(0, 5), (1, 1), (2, 3)], all.Entries);
    }
}
