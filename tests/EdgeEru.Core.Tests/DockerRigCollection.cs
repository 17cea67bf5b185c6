using Xunit;

namespace EdgeEru.Core.Tests;

/// <summary>
/// Test classes that start a Docker rig run one at a time within a collection: each rig is several dockerd
/// processes on a small machine. There are two such collections, so that two rigs run at once (at most; rigs
/// of other assemblies or processes are safe beside them: each takes its own slot of 198.18.0.0/15).
/// </summary>
[CollectionDefinition(Name)]
public sealed class DockerRigCollection
{
    public const string Name = "docker-rig";
}

/// <summary>The second one: what real apps need (volumes, jobs, builds, registries, crashes, replicas).</summary>
[CollectionDefinition(Name)]
public sealed class AppsRigCollection
{
    public const string Name = "docker-rig-apps";
}
