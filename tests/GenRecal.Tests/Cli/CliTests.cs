using System.Text.Json.Nodes;
using GenRecal.Cli;
using GenRecal.Demo;
using GenRecal.Models;
using GenRecal.Tests.Training;

namespace GenRecal.Tests.Cli;

/// <summary>The genrecal command in-process: exit codes, one-line errors, outputs.</summary>
[Collection("console")]
public class CliTests
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            return (Program.Main(args), o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void Generate_json_gives_text_and_ids_and_matches_the_library()
    {
        var root = TestSupport.TempDir();
        var dir = TinyPair.Teacher(root);
        var (code, output, err) = Run("generate", "--model", dir, "--prompt", "What colour is the sky?", "--max-new-tokens", "5", "--json");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Equal("", err);
        var json = JsonNode.Parse(output)!.AsObject();
        var pm = Pretrained.Load(dir);
        var prompt = GenRecal.Tokenization.ChatEncoder.EncodePrompt(pm.Tokenizer, "What colour is the sky?", 0);
        Assert.Equal(prompt, json["prompt_token_ids"]!.AsArray().Select(n => n!.GetValue<int>()));
        var ids = json["token_ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToList();
        Assert.InRange(ids.Count, 0, 5);
        Assert.Equal(pm.Tokenizer.Decode(ids, skipSpecial: true), json["text"]!.GetValue<string>());
    }

    [Fact]
    public void Errors_are_one_line_and_exit_non_zero()
    {
        var (code, _, err) = Run("generate", "--model", "/no/such/dir", "--prompt", "x");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.StartsWith("error: /no/such/dir", err);
        Assert.Single(err.Trim().Split('\n'));

        var root = TestSupport.TempDir();
        var dir = TinyPair.Teacher(root);
        File.WriteAllText(Path.Combine(dir, "model.safetensors"), "garbage");
        (code, _, err) = Run("inspect", "--model", dir);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("model.safetensors", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Inspect_prints_parameter_counts_and_tokenizer()
    {
        var root = TestSupport.TempDir();
        var dir = TinyPair.Student(root);
        var (code, output, _) = Run("inspect", "--model", dir);
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("gpt2", output);
        Assert.Contains(Pretrained.Load(dir).Model.CountParameters().ToString("N0"), output);
    }

    [Fact]
    public void Distill_writes_the_documented_layout_and_pair_report_runs()
    {
        var root = TestSupport.TempDir();
        string t = TinyPair.Teacher(root), s = TinyPair.Student(root), data = TinyPair.WriteData(root), output = Path.Combine(root, "out");
        var (code, _, err) = Run("distill", "--teacher", t, "--student", s, "--data", data, "--out", output, "--steps", "2", "--batch-size", "2");
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(output, "student", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "recalibrator", "recalibrator.safetensors")));
        Assert.True(Directory.Exists(Path.Combine(output, "checkpoints")));
        var metrics = File.ReadAllLines(Path.Combine(output, "metrics.jsonl"));
        Assert.Equal(6, metrics.Length);
        (code, _, _) = Run("generate", "--model", Path.Combine(output, "student"), "--prompt", "hi", "--max-new-tokens", "2");
        Assert.Equal(0, code);
        (code, var report, _) = Run("pair-report", "--teacher", t, "--student", s, "--data", data, "--json");
        Assert.Equal(0, code);
        Assert.Equal(8, JsonNode.Parse(report)!["examples"]!.GetValue<int>());
        (code, _, err) = Run("distill", "--teacher", t, "--student", s, "--data", data, "--out", output, "--stages", "4");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("unknown stage '4'", err);
    }

    [Fact]
    public void The_demo_runs_end_to_end_on_a_miniature_setting_and_fills_every_report_row()
    {
        var output = TestSupport.TempDir();
        var (code, _, err) = Run("demo", "--preset", "miniature", "--out", output, "--seed", "1");
        Assert.True(code == 0, err);
        var report = File.ReadAllText(Path.Combine(output, "report.md"));
        foreach (var model in new[] { "teacher", "student-init", "sft", "genrecal" })
        {
            var row = report.Split('\n').Single(l => l.StartsWith($"| {model} |"));
            Assert.Equal(SyntheticBenchmarkFamilies + 4, row.Split('|').Length); // "", model, accuracy, families..., ""
            Assert.DoesNotContain("| - |", row);
        }
        Assert.True(new FileInfo(Path.Combine(output, "losses.png")).Length > 1000);
        Assert.True(new FileInfo(Path.Combine(output, "accuracy.png")).Length > 1000);
        // the baseline's student optimizer steps and their learning rates are GenRecal's stage 2 then stage 3, step for step
        static double[] Lr(params string[] files) => files.SelectMany(File.ReadAllLines)
            .Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => o["stage_name"]!.GetValue<string>() != "Alignment")
            .Select(o => o["lr"]!.GetValue<double>()).ToArray();
        var genrecalLr = Lr(Path.Combine(output, "runs", "genrecal", "metrics.jsonl"));
        Assert.Equal(GenRecal.Demo.DemoPreset.Miniature.StudentSteps, genrecalLr.Length);
        Assert.Equal(genrecalLr, Lr(Path.Combine(output, "runs", "sft", "cycle1", "metrics.jsonl"), Path.Combine(output, "runs", "sft", "metrics.jsonl")));
        // a second run reuses the data and teacher
        var (code2, out2, _) = Run("demo", "--preset", "miniature", "--out", output, "--seed", "1");
        Assert.Equal(0, code2);
        Assert.Contains("reusing the teacher", out2);
    }

    static int SyntheticBenchmarkFamilies => GenRecal.Data.SyntheticBenchmark.Families.Length;
}

/// <summary>A real process killed with SIGKILL in the middle of writing a checkpoint.</summary>
public class CheckpointKillTests
{
    [Fact]
    public void Killing_the_process_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable()
    {
        var root = TestSupport.TempDir();
        string t = TinyPair.Teacher(root), s = TinyPair.Student(root), data = TinyPair.WriteData(root), output = Path.Combine(root, "out");
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"steps": {"1": 4}, "batch_size": 2, "checkpoint_every": 2}""");
        using var p = TestSupport.StartCli(new() { ["GENRECAL_FAULT_CHECKPOINT_PAUSE_MS"] = "1500" },
            "distill", "--teacher", t, "--student", s, "--data", data, "--out", output, "--stages", "1", "--config", config);
        var checkpoints = Path.Combine(output, "checkpoints");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        // wait until the step-2 checkpoint is complete and the step-4 one is being written
        while (DateTime.UtcNow < deadline && !(File.Exists(Path.Combine(checkpoints, "latest.json"))
               && Directory.GetDirectories(checkpoints, ".partial-*").Length > 0))
            Thread.Sleep(50);
        p.Kill(entireProcessTree: true);
        p.WaitForExit();
        Assert.NotEmpty(Directory.GetDirectories(checkpoints, ".partial-*")); // it really died mid-write
        var (dir, state) = new GenRecal.Training.CheckpointStore(checkpoints, 2).Latest()!.Value;
        Assert.Equal(2, state.Step);
        Pretrained.Load(Path.Combine(dir, "student"));
        GenRecal.Recalibration.Recalibrator.Load(Path.Combine(dir, "recalibrator"));
    }
}

public class SummarizeTests
{
    [Fact]
    public void Shared_arms_count_once_per_seed_and_variants_separately()
    {
        var root = TestSupport.TempDir();
        void Write(string dir, string file, int seed, string variant, double teacher, double genrecal)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, file), $$"""
                {"seed": {{seed}}, "variant": "{{variant}}", "evaluations": [
                  {"model": "teacher", "accuracy": {{teacher}}}, {"model": "genrecal", "accuracy": {{genrecal}}}]}
                """);
        }
        Write(Path.Combine(root, "s0"), "results.json", 0, "paper", 0.8, 0.5);
        Write(Path.Combine(root, "s0"), "results-embeddings.json", 0, "embeddings", 0.8, 0.6);
        Write(Path.Combine(root, "s1"), "results.json", 1, "paper", 0.6, 0.3);
        var md = GenRecal.Cli.Commands.SummarizeCommand.Summarize([Path.Combine(root, "s0"), Path.Combine(root, "s1")]);
        Assert.Contains("| teacher | 70.0 | 14.1 | 80.0, 60.0 |", md);
        Assert.Contains("| genrecal (paper) | 40.0 | 14.1 | 50.0, 30.0 |", md);
        Assert.Contains("| genrecal (embeddings) | 60.0 | 0.0 | 60.0 |", md);
    }
}
