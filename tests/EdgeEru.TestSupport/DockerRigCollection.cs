using Xunit;

namespace EdgeEru.TestSupport;

/// <summary>
/// Test classes that start a Docker rig run one at a time: every rig puts 198.18.0.0/16 on a bridge of
/// its own, and two at once would give the root namespace two routes to the same addresses.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DockerRigCollection
{
    public const string Name = "docker-rig";
}
