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
}
