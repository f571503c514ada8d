using GenRecal.Demo;
using GenRecal.Recalibration;
using GenRecal.Training;

namespace GenRecal.Tests.Demo;

public class GenRecalVariantsTests
{
    [Fact]
    public void The_default_is_the_libraries_defaults_and_paper_selects_the_published_answer_source()
    {
        var defaults = new TrainingConfig();
        Assert.Equal(AnswerSource.TeacherEmbeddings, defaults.Recalibrator.AnswerSource); // best measured, docs/RESULTS.md
        Assert.Equal(defaults.ToJson(), GenRecalVariants.Get(GenRecalVariants.Default)(defaults).ToJson());
        var paper = GenRecalVariants.Get("paper")(defaults);
        Assert.Equal(AnswerSource.TeacherHidden, paper.Recalibrator.AnswerSource);
        Assert.Equal(defaults.ToJson(), (paper with { Recalibrator = paper.Recalibrator with { AnswerSource = AnswerSource.TeacherEmbeddings } }).ToJson());
    }

    [Fact]
    public void A_single_stage_arms_reuse_hash_ignores_the_settings_only_genrecal_reads()
    {
        var root = TestSupport.TempDir();
        string init = Tests.Training.TinyPair.Student(root), data = Tests.Training.TinyPair.WriteData(root);
        string Hash(TrainingConfig c) => DemoRunner.Inputs(DemoRunner.WithoutGenRecalSettings(c), init, null, data);
        var config = new TrainingConfig { Method = "sft", LrStart = 1e-3 };
        // the stage-2 switches and the Recalibrator's settings change nothing an SFT, seqkd, ULD or KD arm does
        Assert.Equal(Hash(config), Hash(config with { TrainRecalibratorInStage2 = !config.TrainRecalibratorInStage2, RegularizerInStage2 = false }));
        Assert.Equal(Hash(config), Hash(config with { Recalibrator = new RecalibratorConfig { NumLayers = 5, AnswerSource = AnswerSource.TeacherHidden } }));
        // and an arm trained when the joint stage 2 was the default keeps its hash
        Assert.Equal(DemoRunner.Inputs(config with { TrainRecalibratorInStage2 = true, RegularizerInStage2 = true }, init, null, data), Hash(config));
        // what the arm does read still counts
        Assert.NotEqual(Hash(config), Hash(config with { LrStart = 2e-3 }));
    }

    [Fact]
    public void An_unknown_variant_is_refused_with_the_known_names()
    {
        var e = Assert.Throws<ArgumentException>(() => GenRecalVariants.Get("nope"));
        Assert.Contains("paper", e.Message);
        Assert.Contains("embeddings", e.Message);
    }

    [Fact]
    public void The_no_kd_ablation_leaves_the_recalibrator_untouched_so_only_the_students_own_ce_trains()
    {
        var root = TestSupport.TempDir();
        var config = GenRecalVariants.Get("no-kd")(new TrainingConfig { Steps = new() { [1] = 3 }, BatchSize = 4, CheckpointEvery = 0, LrStart = 1e-2 });
        var recipe = new DistillationRecipe(new DistillationPlan
        {
            TeacherDir = GenRecal.Tests.Training.TinyPair.Teacher(root), StudentDir = GenRecal.Tests.Training.TinyPair.Student(root),
            DataPath = GenRecal.Tests.Training.TinyPair.WriteData(root), OutDir = Path.Combine(root, "out"), Stages = [Stage.Alignment], Config = config,
        });
        var before = recipe.Recalibrator!.named_parameters().ToDictionary(p => p.name, p => p.parameter.bytes.ToArray());
        recipe.Run();
        Assert.All(recipe.Recalibrator!.named_parameters(), p => Assert.Equal(before[p.name], p.parameter.bytes.ToArray()));
        // the terms are still computed and logged, weighted 0 in the total
        var last = MetricsLog.Read(Path.Combine(root, "out", "metrics.jsonl"))[^1];
        Assert.True(last["kl"]!.GetValue<double>() > 0);
        Assert.Equal(0, last["loss"]!.GetValue<double>());
    }
}
