using GenRecal.Runtime;

namespace GenRecal.Tests.Runtime;

/// <summary>The guard around TorchSharp's scalar use-after-free (TorchGc).</summary>
public class TorchGcTests
{
    sealed class Finalizable(Action onFinalize)
    {
        ~Finalizable() => onFinalize();
    }

    static void Abandon(Action onFinalize) => _ = new Finalizable(onFinalize);

    [Fact]
    public void Settle_runs_pending_finalizers_before_it_returns()
    {
        int finalized = 0;
        for (int i = 0; i < 100; i++) Abandon(() => Interlocked.Increment(ref finalized));
        TorchGc.Settle();
        Assert.Equal(100, Volatile.Read(ref finalized));
    }

    [Fact]
    public void A_no_gc_region_holds_off_collections_between_boundaries_and_reopens_when_a_quarter_is_spent()
    {
        const long budget = 64L << 20;
        using (var region = new NoGcRegion(budget))
        {
            Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
            int gen0 = GC.CollectionCount(0);
            var keep = new List<byte[]>();
            for (int i = 0; i < 100; i++) keep.Add(new byte[10_000]);      // 1 MB: well inside the budget
            region.Boundary();
            Assert.Equal(1, region.Opened);
            Assert.Equal(gen0, GC.CollectionCount(0));                       // no collection happened
            using (var inner = new NoGcRegion(budget)) inner.Boundary();    // an inner loop leaves the outer region alone
            Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
            for (int i = 0; i < 2000; i++) keep.Add(new byte[10_000]);     // 20 MB: over a quarter
            region.Boundary();
            Assert.Equal(2, region.Opened);                                  // closed and reopened at the boundary
            Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
            GC.KeepAlive(keep);
        }
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
    }
}
