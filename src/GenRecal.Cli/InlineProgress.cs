using System.Diagnostics;
using Spectre.Console;

namespace GenRecal.Cli;

/// <summary>
/// Progress reporting that stays on the thread doing the tensor work. System.Progress posts each report to the
/// thread pool and Spectre's progress display redraws from its own thread; both allocate beside TorchSharp's
/// native calls, which is what lets TorchSharp's scalar use-after-free happen (GenRecal.Runtime.TorchGc).
/// </summary>
sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

static class InlineProgressDisplay
{
    /// <summary>Runs <paramref name="work"/> inside a Spectre progress display that it redraws itself, through the
    /// action it is given (at most every 100 ms), instead of a refresh thread.</summary>
    public static void Run(Progress display, Action<ProgressContext, Action> work) =>
        display.AutoRefresh(false).Start(ctx =>
        {
            var clock = Stopwatch.StartNew();
            work(ctx, () =>
            {
                if (clock.ElapsedMilliseconds < 100) return;
                ctx.Refresh();
                clock.Restart();
            });
        });
}
