using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Training;

public class DistillationRecipeTests
{
    static DistillationPlan Plan(string root, Stage[] stages, TrainingConfig config, bool resume = false, string teacherEnc = "o200k_base") => new()
    {
        TeacherDir = File.Exists(Path.Combine(root, "teacher", "config.json")) ? Path.Combine(root, "teacher") : TinyPair.Teacher(root, teacherEnc),
        StudentDir = File.Exists(Path.Combine(root, "student", "config.json")) ? Path.Combine(root, "student") : TinyPair.Student(root),
        DataPath = File.Exists(Path.Combine(root, "data.jsonl")) ? Path.Combine(root, "data.jsonl") : TinyPair.WriteData(root),
        OutDir = Path.Combine(root, "out"),
        Stages = stages,
        Config = config,
        Resume = resume,
    };

    static TrainingConfig Quick(int s1 = 4, int s2 = 4, int s3 = 4) => new()
    {
        Steps = new() { [1] = s1, [2] = s2, [3] = s3 }, BatchSize = 4, CheckpointEvery = 2, LrStart = 1e-3, LrEnd = 1e-4,
    };

    static Dictionary<string, byte[]> Snapshot(nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.bytes.ToArray());

    [Fact]
    public void Frozen_tensors_stay_bit_identical_and_trainable_ones_change_in_each_stage()
    {
        var root = TestSupport.TempDir();
        var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment], Quick()));
        var student0 = Snapshot(recipe.Student.Model);
        var rec0 = Snapshot(recipe.Recalibrator!);
        var teacher0 = Snapshot(Pretrained.Load(Path.Combine(root, "teacher")).Model);
        recipe.Run();
        Assert.Equal(student0, Snapshot(recipe.Student.Model));                        // stage 1: student frozen
        Assert.All(Snapshot(recipe.Recalibrator!), kv => Assert.NotEqual(rec0[kv.Key], kv.Value)); // every Recalibrator tensor trained
        var teacherAfter = Snapshot(Pretrained.Load(Path.Combine(root, "teacher")).Model);
        Assert.Equal(teacher0, teacherAfter);

        // stage 2 alone has no stage-1 Recalibrator here: frozen (the default) it would stay random, so that is refused
        var alone = Plan(root, [Stage.Distillation], Quick()) with { OutDir = Path.Combine(root, "out2"), StudentDir = Path.Combine(root, "out", "student") };
        var refused = Assert.Throws<ArgumentException>(() => new DistillationRecipe(alone));
        Assert.Contains("needs a trained Recalibrator", refused.Message);
        Assert.Contains("train_recalibrator_in_stage2", refused.Message);
        var recipe2 = new DistillationRecipe(alone with { Config = Quick() with { TrainRecalibratorInStage2 = true } });
        Assert.Contains("without a stage-1 Recalibrator", Assert.Single(recipe2.Warnings));
        var before = Snapshot(recipe2.Student.Model);
        recipe2.Run();
        var after = Snapshot(recipe2.Student.Model);
        Assert.All(before.Where(kv => kv.Key.StartsWith("model.layers")), kv => Assert.NotEqual(kv.Value, after[kv.Key]));
        Assert.Equal(before["lm_head.weight"], after["lm_head.weight"]);              // stage 2 trains the body only
    }

    [Fact]
    public void Parameters_a_stage_freezes_keep_no_gradient_from_the_stage_before()
    {
        var root = TestSupport.TempDir();
        using var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment, Stage.Distillation], Quick(s1: 2, s2: 2)));
        recipe.Run();
        // the Recalibrator trained in stage 1 and is frozen in stage 2 (the default): its stage-1 gradients are gone
        Assert.All(recipe.Recalibrator!.parameters(), p => Assert.Null(p.grad));
        // stage 2 trains the body only: the untied head holds no gradient, the body does
        Assert.Null(recipe.Student.Model.lm_head!.weight!.grad);
        Assert.Contains(recipe.Student.Model.parameters(), p => p.grad is not null);
    }

    [Fact]
    public void Stage1_halves_ce_recal_and_kl_on_a_small_fixed_batch_across_tokenizers()
    {
        var root = TestSupport.TempDir();
        TinyPair.TrainedTeacher(root);
        var config = Quick(s1: 150) with { LrStart = 3e-3, LrEnd = 1e-3, BatchSize = 8, CheckpointEvery = 0 };
        var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment], config));
        recipe.Run();
        var m = MetricsLog.Read(Path.Combine(root, "out", "metrics.jsonl"));
        double First(string k) => m.Take(5).Average(o => o[k]!.GetValue<double>());
        double Last(string k) => m.TakeLast(5).Average(o => o[k]!.GetValue<double>());
        Assert.True(Last("ce_recal") < First("ce_recal") / 2, $"ce_recal {First("ce_recal")} -> {Last("ce_recal")}");
        Assert.True(Last("kl") < First("kl") / 2, $"kl {First("kl")} -> {Last("kl")}");
        foreach (var key in new[] { "stage", "step", "lr", "ce_recal", "kl", "reg_ce", "reg_kl", "loss", "grad_norm", "tokens_per_s" })
            Assert.NotNull(m[0][key]);
    }

    [Fact]
    public void The_same_code_runs_when_both_tokenizers_are_identical()
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root, "gpt2");
        var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment, Stage.Distillation], Quick(2, 2)));
        recipe.Run();
        var m = MetricsLog.Read(Path.Combine(root, "out", "metrics.jsonl"));
        Assert.Equal(4, m.Count);
        Assert.NotNull(m[^1]["ce_student"]);
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16")] // the checkpoint holds the float32 masters; the resumed run's masters start from them
    public void Resume_from_a_mid_stage_checkpoint_reproduces_the_uninterrupted_run(string dtype)
    {
        var config = Quick() with { Dtype = dtype };
        var full = TestSupport.TempDir();
        new DistillationRecipe(Plan(full, [Stage.Alignment, Stage.Distillation, Stage.FineTuning], config)).Run();

        var cut = TestSupport.TempDir();
        foreach (var d in new[] { "teacher", "student" }) CopyDir(Path.Combine(full, d), Path.Combine(cut, d));
        File.Copy(Path.Combine(full, "data.jsonl"), Path.Combine(cut, "data.jsonl"));
        var interrupted = new DistillationRecipe(Plan(cut, [Stage.Alignment, Stage.Distillation, Stage.FineTuning], config));
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress(p => { if (p.Stage == Stage.Distillation && p.Step == 2) cts.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => interrupted.Run(progress, cts.Token));
        }
        new DistillationRecipe(Plan(cut, [Stage.Alignment, Stage.Distillation, Stage.FineTuning], config, resume: true)).Run();

        var a = MetricsLog.Read(Path.Combine(full, "out", "metrics.jsonl"));
        var b = MetricsLog.Read(Path.Combine(cut, "out", "metrics.jsonl"));
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            Assert.Equal(a[i]["loss"]!.GetValue<double>(), b[i]["loss"]!.GetValue<double>(), 6);
        var wa = Pretrained.StateDict(Pretrained.Load(Path.Combine(full, "out", "student")).Model);
        var wb = Pretrained.StateDict(Pretrained.Load(Path.Combine(cut, "out", "student")).Model);
        foreach (var (k, t) in wa) Assert.True(TestSupport.MaxAbsDiff(t, wb[k]) <= 1e-6, k);
    }

    [Fact]
    public void A_crash_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable()
    {
        var root = TestSupport.TempDir();
        var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment], Quick(s1: 4)));
        int writes = 0;
        recipe.Checkpoints.AfterFileWritten = path => { if (++writes == 4) throw new IOException("simulated crash"); };
        Assert.Throws<IOException>(() => recipe.Run());
        var store = new CheckpointStore(Path.Combine(root, "out", "checkpoints"), 2);
        var (dir, state) = store.Latest()!.Value;
        Assert.Equal(2, state.Step);                      // the step-2 checkpoint survived the crash at step 4
        Pretrained.Load(Path.Combine(dir, "student"));
        Recalibrator.Load(Path.Combine(dir, "recalibrator"));
        // and the run resumes from it to completion
        new DistillationRecipe(Plan(root, [Stage.Alignment], Quick(s1: 4), resume: true)).Run();
        Assert.Equal(4, store.Latest()!.Value.State.Step);
    }

    [Fact]
    public void A_NaN_loss_stops_the_stage_naming_the_step_and_keeps_the_last_checkpoint()
    {
        var root = TestSupport.TempDir();
        var recipe = new DistillationRecipe(Plan(root, [Stage.Alignment], Quick(s1: 6)));
        int steps = 0;
        var poison = new SyncProgress(p =>
        {
            // after step 2 (checkpointed) the student's weights turn to NaN, as a diverged or corrupt model would
            if (++steps == 2) using (no_grad()) recipe.Student.Model.model.norm.weight.fill_(float.NaN);
        });
        var e = Assert.Throws<TrainingStoppedException>(() => recipe.Run(poison));
        Assert.Contains("step 3", e.Message);
        Assert.Contains("not finite", e.Message);
        var (dir, state) = new CheckpointStore(Path.Combine(root, "out", "checkpoints"), 2).Latest()!.Value;
        Assert.Equal(2, state.Step);
        var kept = Pretrained.Load(Path.Combine(dir, "student"));
        Assert.False(kept.Model.model.norm.weight.isnan().any().item<bool>());
    }

    [Fact]
    public void Existing_checkpoints_without_resume_are_not_overwritten()
    {
        var root = TestSupport.TempDir();
        new DistillationRecipe(Plan(root, [Stage.Alignment], Quick(s1: 2))).Run();
        Assert.Contains("resume the run", Assert.Throws<ArgumentException>(() => new DistillationRecipe(Plan(root, [Stage.Alignment], Quick(s1: 2)))).Message);
    }

    static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    sealed class SyncProgress(Action<TrainingProgress> a) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => a(value);
    }
}
