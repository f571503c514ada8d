using System.Diagnostics;

namespace GenRecal.Tests.Runtime;

/// <summary>scripts/prereqs.sh runs before every ./test: a failure in 1 of N runs (as the SIGPIPE under pipefail was) breaks CI at random.</summary>
public class PrereqsScriptTests
{
    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "scripts", "prereqs.sh"))) return dir.FullName;
        throw new InvalidOperationException($"no scripts/prereqs.sh above {AppContext.BaseDirectory}");
    }

    [Fact]
    public async Task Prereqs_succeeds_200_times_in_a_row()
    {
        var script = Path.Combine(RepoRoot(), "scripts", "prereqs.sh");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-c", "for i in $(seq 200); do \"$0\" || { echo \"run $i failed with $?\" >&2; exit 1; }; done", script }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var err = await p.StandardError.ReadToEndAsync(timeout.Token);
        await p.WaitForExitAsync(timeout.Token);
        Assert.True(p.ExitCode == 0, err);
    }
}
