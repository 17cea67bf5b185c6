using System.Text;
using System.Text.RegularExpressions;
using EdgeEru.TestSupport;
using Xunit;

namespace EdgeEru.Registry.Tests;

/// <summary>docs/registry.md is the contract: every example in it must decode, unchanged, with this code.</summary>
public partial class RegistryDocTests
{
    [GeneratedRegex("Key `(?<key>/eru(-private)?/[^`]+)`:\\s*```json\\n(?<json>.+?)\\n```", RegexOptions.Singleline)]
    private static partial Regex Example();

    [Fact]
    public void Every_example_in_the_contract_decodes_and_reencodes_to_itself()
    {
        var doc = File.ReadAllText(Path.Combine(Repo.Root, "docs", "registry.md"));
        var keys = new RegistryKeys();
        var covered = new HashSet<RegistryKind>();
        foreach (Match m in Example().Matches(doc))
        {
            var key = m.Groups["key"].Value;
            Assert.True(keys.TryParse(key, out var kind, out var name), $"{key} is not a registry key");
            var json = Encoding.UTF8.GetBytes(m.Groups["json"].Value);
            var value = kind.DecodeRecord(json, name);
            Assert.Equal(name, value.KeyName);
            Assert.Equal(m.Groups["json"].Value, Encoding.UTF8.GetString(kind.EncodeRecord(value)));
            covered.Add(kind);
        }
        Assert.Equal(Kinds.All.Count + Kinds.Private.Count, covered.Count);
    }

}
