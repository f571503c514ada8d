using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Models.Families;
using GenRecal.Tokenization;
using GenRecal.Tests.Cli;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models.Families;

/// <summary>Pairs of different families through the whole tool: an InternVL teacher (original format) and a Qwen2-VL
/// student — different encoders, tiling vs dynamic resolution, 1-D vs M-RoPE positions, different templates.</summary>
[Collection("console")]
public class CrossFamilyTests
{
    static string InternVl => TestSupport.Fixture("internvl", "internvl2_5-qwen2");
    static string Qwen2Vl => TestSupport.Fixture("qwen2vl", "qwen2-vl");

    static string Data(string root)
    {
        var dir = Path.Combine(root, "data");
        SyntheticBenchmark.Generate(dir, new SyntheticBenchmark.Options(9, 0, 0, Seed: 5));
        return Path.Combine(dir, "train.jsonl");
    }

    [Fact]
    public void Pair_report_and_distill_stages_1_to_3_run_and_the_student_is_written_back_as_Qwen2_VL()
    {
        var root = TestSupport.TempDir();
        var data = Data(root);
        var (code, report, err) = CliTests.Run("pair-report", "--teacher", InternVl, "--student", Qwen2Vl, "--data", data, "--json");
        Assert.True(code == 0, err);
        Assert.Equal(9, (int)JsonNode.Parse(report)!["examples"]!);
        var output = Path.Combine(root, "out");
        (code, _, err) = CliTests.Run("distill", "--teacher", InternVl, "--student", Qwen2Vl, "--data", data, "--out", output,
                                      "--stages", "1,2,3", "--steps", "2", "--batch-size", "3");
        Assert.True(code == 0, err);
        var student = Path.Combine(output, "student");
        Assert.Equal("qwen2_vl", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(student, "config.json")))!["model_type"]!);
        var keys = GenRecal.Tensors.Safetensors.Load(Path.Combine(student, "model.safetensors")).Keys.ToHashSet();
        Assert.Contains("visual.merger.mlp.0.weight", keys);
        Assert.Contains("visual.blocks.1.attn.qkv.weight", keys);
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", keys);
        Assert.Equal(File.ReadAllText(Path.Combine(Qwen2Vl, "preprocessor_config.json")), File.ReadAllText(Path.Combine(student, "preprocessor_config.json")));
        using var reloaded = Pretrained.Load(student);
        Assert.Same(ModelFamilies.Qwen2VL, reloaded.Config.Family);
        // the student trained: some weights moved away from the checkpoint it started from
        using var start = Pretrained.Load(Qwen2Vl);
        var before = Pretrained.StateDict(start.Model);
        Assert.Contains(Pretrained.StateDict(reloaded.Model), kv => !kv.Value.allclose(before[kv.Key], 0, 0));
    }

    [Fact]
    public void Qwen2_VL_save_round_trip_is_byte_stable()
    {
        using var pm = Pretrained.Load(Qwen2Vl);
        var a = Path.Combine(TestSupport.TempDir(), "a");
        Pretrained.Save(pm.Model, pm.Config, pm.Tokenizer, a);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Qwen2Vl, "model.safetensors")).Length, File.ReadAllBytes(Path.Combine(a, "model.safetensors")).Length);
        using var again = Pretrained.Load(a);
        var b = Path.Combine(TestSupport.TempDir(), "b");
        Pretrained.Save(again.Model, again.Config, again.Tokenizer, b);
        foreach (var f in new[] { "config.json", "model.safetensors", "preprocessor_config.json", "chat_template.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
    }

    [Fact]
    public void Qwen2_VL_batched_greedy_answers_equal_one_at_a_time_with_images_of_different_sizes()
    {
        var root = TestSupport.TempDir();
        var examples = LlavaDataset.LoadStrict(Data(root)).Where(e => e.ImagePath is not null).Take(2).ToList();
        var big = Path.Combine(root, "big.png");
        File.Copy(TestSupport.Fixture("qwen2vl", "image.png"), big); // 150×90: a different grid from the synthetic images
        examples[1] = examples[1] with { ImagePath = big };
        using var pm = Pretrained.Load(Qwen2Vl);
        var batch = Evaluator.AnswerBatch(pm, examples, 6);
        for (int i = 0; i < examples.Count; i++)
            Assert.Equal(Evaluator.AnswerBatch(pm, [examples[i]], 6)[0], batch[i]);
        Assert.NotEqual(pm.Vlm!.ImageTokensFor(examples[0].ImagePath!), pm.Vlm.ImageTokensFor(big));
    }
}
