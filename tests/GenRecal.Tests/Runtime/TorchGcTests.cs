using GenRecal.Cli;
using GenRecal.Runtime;

namespace GenRecal.Tests.Runtime;

/// <summary>The guards around TorchSharp's scalar use-after-free (TorchGc): nothing allocates beside tensor work.</summary>
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
    public void Cli_progress_reports_on_the_reporting_thread_before_Report_returns()
    {
        // System.Progress would post to the thread pool: later, and on another thread
        int reporter = Environment.CurrentManagedThreadId, seenOn = -1, seen = 0;
        IProgress<int> progress = new InlineProgress<int>(v => { seenOn = Environment.CurrentManagedThreadId; seen = v; });
        progress.Report(7);
        Assert.Equal((reporter, 7), (seenOn, seen));
    }
}
