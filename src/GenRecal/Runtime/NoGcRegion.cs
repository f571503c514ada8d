using System.Runtime;

namespace GenRecal.Runtime;

/// <summary>
/// Keeps the garbage collector from running while tensor work is in flight, so TorchSharp 0.107's unrooted
/// <c>Scalar</c>s (see <see cref="TorchGc"/>) cannot be finalized inside a native call, whichever thread allocates.
/// A no-GC region (<see cref="GC.TryStartNoGCRegion(long)"/>) is opened at a step boundary with a budget of managed
/// allocation; at each later boundary, once a quarter of the budget is used, it is closed and reopened there — the one
/// collection this costs happens between steps, where no native call is running. A step must allocate less than
/// three quarters of the budget (a training step allocates kilobytes of managed memory; the budget is 512 MiB, reserved, not touched, while the region is open).
/// Measured with <c>bench/GenRecal.Bench scalar-race [MiB]</c>, a thread allocating about a gigabyte a second beside
/// <c>x + 1.0</c> in a loop: unguarded it fails within 0.2 s; in a 128 MiB region after about 5 s (the other thread
/// spent the budget between two boundaries); in a 512 MiB or 1 GiB region it ran its 10 s without error. The
/// library's own threads allocate nothing near that, so a collection inside a step needs a foreign thread
/// allocating hundreds of megabytes within one step.
/// Not nestable: the outermost loop owns the region, and an inner one finding a region open leaves it alone.
/// </summary>
public sealed class NoGcRegion : IDisposable
{
    public const long DefaultBudget = 512L << 20;
    readonly long budget;
    bool owner;
    long openedAt;

    public NoGcRegion(long budget = DefaultBudget)
    {
        this.budget = budget;
        // someone further out already holds a region: it does the boundaries
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return;
        owner = true;
        Open();
    }

    /// <summary>Opened regions so far (each one collection at a boundary), for tests and diagnostics.</summary>
    public int Opened { get; private set; }

    /// <summary>Call between steps: reopens the region when a quarter of its budget is spent (or the runtime ended it).</summary>
    public void Boundary()
    {
        if (!owner) return;
        bool inRegion = GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;
        if (inRegion && GC.GetTotalAllocatedBytes() - openedAt < budget / 4) return;
        if (inRegion) GC.EndNoGCRegion();
        Open();
    }

    void Open()
    {
        // drains the finalizers of earlier phases first (TorchGc.Settle), then reserves the budget
        TorchGc.Settle();
        // read before the region starts: whatever other threads allocate from here on counts as spent
        openedAt = GC.GetTotalAllocatedBytes();
        if (!GC.TryStartNoGCRegion(budget)) throw new InvalidOperationException("the runtime refused a no-GC region");
        Opened++;
    }

    public void Dispose()
    {
        if (owner && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        owner = false;
    }
}
