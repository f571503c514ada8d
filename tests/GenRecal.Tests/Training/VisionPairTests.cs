using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tokenization;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Training;

/// <summary>GenRecal between two VLMs with different tokenizers, image sizes and image-token counts.</summary>
public class VisionPairTests
{
    static (string Teacher, string Student, string Data) Pair(string root)
    {
        var dataDir = Path.Combine(root, "data");
        SyntheticBenchmark.Generate(dataDir, new SyntheticBenchmark.Options(12, 0, 0, Seed: 3));
        var data = Path.Combine(dataDir, "train.jsonl");
        var corpus = LlavaDataset.LoadStrict(data).SelectMany(e => e.Turns.Select(t => t.Value)).ToList();
        string Make(string name, string enc, ChatTemplate tpl, LanguageModelConfig text, VisionConfig vision, long seed)
        {
            var tok = ModelTokenizer.BuildCompact(enc, corpus, tpl);
            var config = new ModelConfig(text with { VocabSize = tok.VocabSize }, vision, tok.ImageTokenId);
            var model = Pretrained.Create(config);
            TestSupport.Randomize(model, seed, 0.05);
            var dir = Path.Combine(root, name);
            Pretrained.Save(model, config, tok, dir);
            return dir;
        }
        var teacher = Make("teacher", "o200k_base", ChatTemplate.ChatML, TestSupport.TinyText(hidden: 32), TestSupport.TinyVision(16, 4, 0.5), 1);  // 4 image tokens
        var student = Make("student", "gpt2", ChatTemplate.Llama3, TestSupport.TinyText(hidden: 16, heads: 2, kvHeads: 1, layers: 1), TestSupport.TinyVision(24, 4, 1.0), 2); // 36 image tokens
        return (teacher, student, data);
    }

    static Dictionary<string, byte[]> Snapshot(nn.Module m, string prefix) =>
        m.named_parameters().Where(p => p.name.StartsWith(prefix)).ToDictionary(p => p.name, p => p.parameter.bytes.ToArray());

    [Theory]
    [InlineData(false, "fp32")]
    [InlineData(true, "fp32")]
    [InlineData(false, "bf16")] // the vision tower computes in bf16 too; frozen, it must still come out bit-identical
    [InlineData(true, "bf16")]
    public void All_stages_run_across_image_token_layouts_and_the_vision_encoder_freezes_by_default(bool trainVision, string dtype)
    {
        var root = TestSupport.TempDir();
        var (teacher, student, data) = Pair(root);
        var recipe = new DistillationRecipe(new DistillationPlan
        {
            TeacherDir = teacher, StudentDir = student, DataPath = data, OutDir = Path.Combine(root, "out"),
            Stages = [Stage.Alignment, Stage.Distillation, Stage.FineTuning],
            Config = new TrainingConfig { Steps = new() { [1] = 2, [2] = 2, [3] = 2 }, BatchSize = 3, LrStart = 1e-2, CheckpointEvery = 0, TrainVisionEncoder = trainVision, Dtype = dtype },
        });
        var vision0 = Snapshot(recipe.Student.Model, "vision_model.");
        var projector0 = Snapshot(recipe.Student.Model, "mlp1.");
        recipe.Run();
        var vision1 = Snapshot(recipe.Student.Model, "vision_model.");
        if (trainVision) Assert.All(vision1, kv => Assert.NotEqual(vision0[kv.Key], kv.Value));
        else Assert.Equal(vision0, vision1);
        Assert.All(Snapshot(recipe.Student.Model, "mlp1."), kv => Assert.NotEqual(projector0[kv.Key], kv.Value)); // stage 3 trains the projector
        Assert.Equal(6, MetricsLog.Read(Path.Combine(root, "out", "metrics.jsonl")).Count);
    }
}
