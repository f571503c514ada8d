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
            return (Program.Run(args), o.ToString(), e.ToString());
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
        // the cost estimate follows --config's steps and stage-2 settings; a bad config is refused by its path
        var config = Path.Combine(root, "cost.json");
        File.WriteAllText(config, """{"steps": {"1": 10, "2": 30, "3": 20}, "train_recalibrator_in_stage2": false}""");
        (code, report, err) = Run("pair-report", "--teacher", t, "--student", s, "--data", data, "--json", "--config", config);
        Assert.True(code == 0, err);
        var cost = JsonNode.Parse(report)!["cost_estimate"]!;
        Assert.Equal(30, cost["steps"]!["2"]!.GetValue<int>());
        Assert.Equal(0, cost["stage2_regularizer"]!.GetValue<double>());
        Assert.True(cost["arm_ratio_store_filled"]!.GetValue<double>() > cost["arm_ratio_store_reused"]!.GetValue<double>());
        // no student steps: no ratio, in JSON and in the table
        File.WriteAllText(config, """{"steps": {"1": 5, "2": 0, "3": 0}}""");
        (code, report, err) = Run("pair-report", "--teacher", t, "--student", s, "--data", data, "--json", "--config", config);
        Assert.True(code == 0, err);
        Assert.Null(JsonNode.Parse(report)!["cost_estimate"]!["arm_ratio_store_filled"]);
        (code, report, err) = Run("pair-report", "--teacher", t, "--student", s, "--data", data, "--config", config);
        Assert.True(code == 0, err);
        Assert.Contains("n/a", report);
        File.WriteAllText(config, """{"stepz": {}}""");
        (code, _, err) = Run("pair-report", "--teacher", t, "--student", s, "--data", data, "--config", config);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains(config, err);
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
        string[] rows = ["teacher", "sft", "seqkd", "uld", "genrecal", "genrecal-paper", "sft-same-tokenizer", "kd-same-tokenizer"];
        int families = GenRecal.Demo.DemoPreset.Miniature.Families.Count;
        foreach (var model in rows)
        {
            var row = report.Split('\n').Single(l => l.StartsWith($"| {model} |"));
            Assert.Equal(families + 6, row.Split('|').Length); // "", model, accuracy, reference, Δ, families..., ""
            Assert.DoesNotContain("| - |", row);
        }
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "results.json")))!.AsObject();
        Assert.Equal(rows, results["evaluations"]!.AsArray().Select(e => e!["model"]!.GetValue<string>()));
        foreach (var e in results["evaluations"]!.AsArray())
        {
            double acc = e!["accuracy"]!.GetValue<double>();
            Assert.InRange(acc, 0, 1);
            Assert.Equal(GenRecal.Demo.DemoPreset.Miniature.Test, e["items"]!.AsArray().Count); // every question's prediction, for paired comparisons
        }
        Assert.Contains(results["differences"]!.AsArray(), d => d!["a"]!.GetValue<string>() == "kd-same-tokenizer" && d["b"]!.GetValue<string>() == "sft-same-tokenizer");
        // each arm's loss terms per stage, first and last steps, from its metrics
        var genrecalTerms = results["loss_terms"]!["genrecal"]!.AsObject();
        Assert.Equal(["Alignment", "Distillation", "FineTuning"], genrecalTerms.Select(kv => kv.Key));
        Assert.NotNull(genrecalTerms["Distillation"]!["ce_student"]);
        Assert.Equal(["Sft (cycle 1)", "Sft (cycle 2)"], results["loss_terms"]!["uld"]!.AsObject().Select(kv => kv.Key));
        Assert.NotNull(results["loss_terms"]!["uld"]!["Sft (cycle 1)"]!["uld"]);
        foreach (var png in new[] { "losses.png", "accuracy.png", "families.png" })
            Assert.True(new FileInfo(Path.Combine(output, png)).Length > 1000, png);
        // every student arm's optimizer steps and their learning rates are GenRecal's stage 2 then stage 3, step for step
        static double[] Lr(params string[] files) => files.SelectMany(File.ReadAllLines)
            .Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => o["stage_name"]!.GetValue<string>() != "Alignment")
            .Select(o => o["lr"]!.GetValue<double>()).ToArray();
        var genrecalLr = Lr(Path.Combine(output, "runs", "genrecal", "metrics.jsonl"));
        Assert.Equal(GenRecal.Demo.DemoPreset.Miniature.StudentSteps, genrecalLr.Length);
        foreach (var arm in new[] { "sft", "seqkd", "uld", "sft-same-tokenizer", "kd-same-tokenizer" })
            Assert.Equal(genrecalLr, Lr(Path.Combine(output, "runs", arm, "cycle1", "metrics.jsonl"), Path.Combine(output, "runs", arm, "metrics.jsonl")));
        // SFT learns from the labelled part only; the distillers from all of S, the teacher answering the rest
        var preset = GenRecal.Demo.DemoPreset.Miniature;
        Assert.Equal(preset.Labelled, File.ReadAllLines(Path.Combine(output, "data", "labelled.jsonl")).Length);
        Assert.True(File.ReadAllLines(Path.Combine(output, "data", "completed.jsonl")).Length > preset.Labelled);
        // a second run reuses the data, the teacher, its answers and every arm
        var (code2, out2, _) = Run("demo", "--preset", "miniature", "--out", output, "--seed", "1");
        Assert.Equal(0, code2);
        Assert.Contains("reusing the teacher", out2);
        Assert.Contains("reusing kd-same-tokenizer", out2);
        // --report-only trains nothing and reports the training times recorded when each model was trained
        var before = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "results.json")))!["seconds"]!.AsObject();
        var (code3, out3, err3) = Run("demo", "--preset", "miniature", "--out", output, "--seed", "1", "--report-only");
        Assert.True(code3 == 0, err3);
        Assert.DoesNotContain("training ", out3);
        var after = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "results.json")))!["seconds"]!.AsObject();
        foreach (var arm in rows) Assert.Equal(before[arm]!.GetValue<double>(), after[arm]!.GetValue<double>());
        var empty = TestSupport.TempDir();
        var (code4, _, err4) = Run("demo", "--preset", "miniature", "--out", empty, "--report-only");
        Assert.Equal(2, code4);
        Assert.Contains("no benchmark to report on", err4);
    }
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
    /// <summary>One model's evaluation on 10 questions, right on the first <paramref name="right"/>.</summary>
    static JsonObject Eval(string model, int right) => new GenRecal.Evaluation.EvaluationResult(model, right, 10, [])
    {
        Items = Enumerable.Range(0, 10).Select(i => new GenRecal.Evaluation.EvaluatedItem($"test-{i}", "f", "", i < right)).ToList(),
    }.ToJson();

    [Fact]
    public void Summarize_averages_over_seeds_and_pools_paired_differences_over_every_seeds_questions()
    {
        var root = TestSupport.TempDir();
        // per seed: 10 questions; sft right on the first k, genrecal on the first m (so genrecal − sft = (m − k)/10 on each)
        void Write(string dir, string file, int seed, string variant, params JsonObject[] evals)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, file), new JsonObject { ["seed"] = seed, ["variant"] = variant, ["evaluations"] = new JsonArray(evals) }.ToJsonString());
        }
        Write(Path.Combine(root, "s0"), "results.json", 0, "embeddings", Eval("teacher", 8), Eval("sft", 4), Eval("genrecal", 6));
        Write(Path.Combine(root, "s0"), "results-paper.json", 0, "paper", Eval("teacher", 8), Eval("sft", 4), Eval("genrecal", 5));
        Write(Path.Combine(root, "s1"), "results.json", 1, "embeddings", Eval("teacher", 6), Eval("sft", 3), Eval("genrecal", 3));
        var md = GenRecal.Cli.Commands.SummarizeCommand.Summarize([Path.Combine(root, "s0"), Path.Combine(root, "s1")]);
        Assert.Contains("| teacher | 70.0 | 14.1 | 80.0, 60.0 | 20 |", md);
        Assert.Contains("| genrecal | 45.0 | 21.2 | 60.0, 30.0 | 20 |", md);
        Assert.Contains("| genrecal (paper) | 50.0 | 0.0 | 50.0 | 10 |", md);
        // per seed: genrecal − sft = +20.0 (seed 0) and 0.0 (seed 1); over both, +10.0 with a two-stage interval
        Assert.Contains("| genrecal − sft | +10.0 [", md);
        Assert.Contains("| +20.0, 0.0 | no |", md);          // seed 1 shows no gain: the interval reaches 0
        Assert.Contains("| genrecal (paper) − sft | +10.0 [", md);
        Assert.Contains("| +10.0 | no |", md);                // one seed, one discordant question of 10: the interval reaches 0
    }

    [Fact]
    public void Summarize_refuses_to_pool_genrecal_rows_whose_stage_2_differed()
    {
        var root = TestSupport.TempDir();
        void Write(string dir, int seed, string? stageTwo)
        {
            Directory.CreateDirectory(dir);
            var j = new JsonObject { ["seed"] = seed, ["variant"] = "embeddings", ["evaluations"] = new JsonArray(Eval("sft", 4), Eval("genrecal", 6)) };
            if (stageTwo is not null) j[GenRecal.Cli.DemoReport.StageTwoKey] = stageTwo;
            File.WriteAllText(Path.Combine(dir, "results.json"), j.ToJsonString());
        }
        Write(Path.Combine(root, "old"), 0, null);          // before the key: the joint default of the time
        Write(Path.Combine(root, "joint"), 1, "joint");
        Write(Path.Combine(root, "frozen"), 2, "frozen");
        Assert.Contains("| genrecal |", GenRecal.Cli.Commands.SummarizeCommand.Summarize([Path.Combine(root, "old"), Path.Combine(root, "joint")]));
        var e = Assert.Throws<InvalidDataException>(() => GenRecal.Cli.Commands.SummarizeCommand.Summarize([Path.Combine(root, "old"), Path.Combine(root, "frozen")]));
        Assert.Contains(Path.Combine(root, "frozen", "results.json"), e.Message);
        Assert.Contains("frozen", e.Message);
        // the demo writes the key: its default GenRecal arm is frozen now
        Assert.Equal("frozen", GenRecal.Cli.DemoReport.StageTwo(new GenRecal.Training.TrainingConfig()));
    }
}
