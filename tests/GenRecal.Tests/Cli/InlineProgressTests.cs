using GenRecal.Cli;

namespace GenRecal.Tests.Cli;

/// <summary>CLI progress stays on the working thread, so nothing allocates beside tensor work (GenRecal.Runtime.TorchGc).</summary>
public class InlineProgressTests
{
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
