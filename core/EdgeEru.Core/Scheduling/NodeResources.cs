namespace EdgeEru.Core.Scheduling;

/// <summary>
/// What a node can still give, as the scheduler sees it: capacity minus the sum of its workload
/// records' allocations (derived, never a stored counter). Immutable; placing returns a new one.
/// </summary>
public sealed record NodeResources
{
    public required string Name { get; init; }

    /// <summary>Share pieces per core: 100 = a core can be bound once; 200 = twice (oversell).</summary>
    public int PiecesPerCore { get; init; } = 100;

    /// <summary>Free pieces on each core (index = core id).</summary>
    public required int[] FreePieces { get; init; }

    /// <summary>NUMA node of each core (same length as <see cref="FreePieces"/>; empty: one NUMA node).</summary>
    public string[] CoreNuma { get; init; } = [];

    public long FreeMemory { get; init; }

    public long TotalMemory { get; init; }

    /// <summary>Instances of the app being deployed already on this node (for spreading).</summary>
    public int Existing { get; init; }

    public int CpuCores => FreePieces.Length;
}

/// <summary>What one instance needs.</summary>
public sealed record ResourceRequest
{
    public long Memory { get; init; }

    /// <summary>CPU in cores (1.5 = one full core and half of another when bound).</summary>
    public double Cpu { get; init; }

    public bool CpuBind { get; init; }

    /// <summary>Full cores of a bound request (X of X.Y).</summary>
    public int FullCores => (int)Math.Floor(Cpu + 1e-9);

    /// <summary>Pieces of the fragment core of a bound request (Y×100 of X.Y; 0 when whole).</summary>
    public int FragmentPieces => (int)Math.Round((Cpu - FullCores) * 100);

    public IEnumerable<string> Problems()
    {
        if (Memory < 0) yield return "memory must not be negative";
        if (Cpu < 0) yield return "cpu must not be negative";
        if (CpuBind && Cpu <= 0) yield return "cpu bind needs a cpu request above 0";
        if (CpuBind && Math.Abs(Cpu * 100 - Math.Round(Cpu * 100)) > 1e-6) yield return $"cpu {Cpu} must be a multiple of 0.01 to be bound";
    }
}

/// <summary>Cores bound to one instance: core id → pieces.</summary>
public sealed record CpuPlan(IReadOnlyList<(int Core, int Pieces)> Cores, string? Numa);
