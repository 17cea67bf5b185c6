using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Test classes that start a Docker rig run one at a time: each rig is several dockerd processes on a
/// small machine. (Rigs of other assemblies or processes are safe beside them: each takes its own slot
/// of 198.18.0.0/15.)
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DockerRigCollection
{
    public const string Name = "docker-rig";
}
