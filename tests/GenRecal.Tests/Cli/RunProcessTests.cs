using System.Diagnostics;
using GenRecal.Cli;
using GenRecal.Models;
using GenRecal.Tests.Training;
using GenRecal.Training;

namespace GenRecal.Tests.Cli;

/// <summary>A distill run as a real child process: a second run on its OUT is locked out, and Ctrl-C (SIGINT) stops it cleanly.</summary>
[Collection("console")]
public class RunProcessTests
{
    /// <summary>A stage-1 run that checkpoints every step and pauses after each checkpoint file, so a test can act mid-run.</summary>
    static (Process Child, string[] Args, string Checkpoints) StartSlowRun()
    {
        var root = TestSupport.TempDir();
        string t = TinyPair.Teacher(root), s = TinyPair.Student(root), data = TinyPair.WriteData(root), output = Path.Combine(root, "out");
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"steps": {"1": 4}, "batch_size": 2, "checkpoint_every": 1}""");
        string[] args = ["distill", "--teacher", t, "--student", s, "--data", data, "--out", output, "--stages", "1", "--config", config];
        var child = TestSupport.StartCli(new() { ["GENRECAL_FAULT_CHECKPOINT_PAUSE_MS"] = "1000" }, args);
        var checkpoints = Path.Combine(output, "checkpoints");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline && !child.HasExited && !File.Exists(Path.Combine(checkpoints, CheckpointStore.LatestFileName))) Thread.Sleep(50);
        Assert.False(child.HasExited, child.HasExited ? child.StandardError.ReadToEnd() : "");
        return (child, args, checkpoints);
    }

    [Fact]
    public void A_second_run_on_the_same_out_exits_2_while_the_first_holds_it()
    {
        var (child, args, checkpoints) = StartSlowRun();
        using (child)
        {
            try
            {
                var (code, _, err) = CliTests.Run([.. args, "--resume"]);
                Assert.Equal(ExitCodes.InputError, code);
                Assert.Contains("OUT is in use by another run", err);
                Assert.False(child.HasExited); // the first run goes on untouched
            }
            finally
            {
                child.Kill(entireProcessTree: true);
                child.WaitForExit();
            }
        }
        // the lock died with the process: the run resumes
        var (resumed, _, resumeErr) = CliTests.Run([.. args, "--resume"]);
        Assert.True(resumed == 0, resumeErr);
        Assert.Equal(4, new CheckpointStore(checkpoints, 2).Latest()!.Value.State.Step);
    }

    [Fact]
    public void Sigint_stops_between_steps_with_exit_3_the_checkpoint_intact_and_says_how_to_resume()
    {
        var (child, args, checkpoints) = StartSlowRun();
        using (child)
        {
            using (var kill = Process.Start("kill", ["-INT", child.Id.ToString()])) kill.WaitForExit();
            Assert.True(child.WaitForExit(60_000), "the run did not stop after SIGINT");
            var err = child.StandardError.ReadToEnd();
            Assert.True(child.ExitCode == ExitCodes.Stopped, $"exit {child.ExitCode}: {err}");
            Assert.Contains("interrupted", err);
            Assert.Contains("--resume", err);
            Assert.DoesNotContain("   at ", err);
        }
        var (dir, state) = new CheckpointStore(checkpoints, 2).Latest()!.Value;
        Assert.InRange(state.Step, 1, 3);
        Pretrained.Load(Path.Combine(dir, "student"));
        var (code, _, resumeErr) = CliTests.Run([.. args, "--resume"]);
        Assert.True(code == 0, resumeErr);
        Assert.Equal(4, new CheckpointStore(checkpoints, 2).Latest()!.Value.State.Step);
    }

    [Fact]
    public void The_cli_keeps_freed_memory_unless_told_not_to_and_trains_the_same_weights_either_way()
    {
        var root = TestSupport.TempDir();
        string t = TinyPair.Teacher(root), s = TinyPair.Student(root), data = TinyPair.WriteData(root);
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"steps": {"1": 2, "2": 2}, "batch_size": 4, "checkpoint_every": 0}""");
        string Train(string name, Dictionary<string, string> environment)
        {
            var output = Path.Combine(root, name);
            using var child = TestSupport.StartCli(environment, "distill", "--teacher", t, "--student", s, "--data", data, "--out", output, "--stages", "1,2", "--config", config, "--threads", "1");
            var err = child.StandardError.ReadToEndAsync();
            child.StandardOutput.ReadToEnd();
            Assert.True(child.WaitForExit(120_000), "the run did not finish");
            Assert.True(child.ExitCode == 0, err.Result);
            return output;
        }
        var kept = Train("kept", []);
        var glibc = Train("glibc", new() { [GenRecal.Runtime.FreedMemory.EnvironmentVariable] = "0" });
        static System.Text.Json.Nodes.JsonNode Runtime(string output) => System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, RunRecord.FileName)))!["runtime"]!;
        Assert.True(Runtime(kept)["keep_freed_memory"]!.GetValue<bool>());
        Assert.False(Runtime(glibc)["keep_freed_memory"]!.GetValue<bool>());
        Assert.Equal(1, Runtime(kept)["threads"]!.GetValue<int>());
        // the allocator decides where tensors live, never what they hold: both runs save the same bytes
        foreach (var part in new[] { "student", "recalibrator" })
        {
            var a = TestSupport.FilesUnder(Path.Combine(kept, part));
            var b = TestSupport.FilesUnder(Path.Combine(glibc, part));
            Assert.NotEmpty(a);
            Assert.Equal(a.Keys.Order(), b.Keys.Order());
            foreach (var (file, bytes) in a) Assert.True(bytes.AsSpan().SequenceEqual(b[file]), $"{part}/{file} differs");
        }
    }
}
