using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Test classes that start a Docker rig run one at a time: every rig puts 198.18.0.0/16 on a bridge of
/// its own, and two at once would give the root namespace two routes to the same addresses. (xunit
/// reads collection definitions per test assembly: another assembly with rigs needs its own subnet.)
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DockerRigCollection
{
    public const string Name = "docker-rig";
}
