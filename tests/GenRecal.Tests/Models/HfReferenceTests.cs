using System.Text.Json.Nodes;
using GenRecal.Evaluation;
using GenRecal.Models;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

/// <summary>
/// Checkpoints and outputs written by HF transformers 5.17 (tools/hf-fixtures/make_fixtures.py, run once
/// on a machine with PyTorch): our loader must read them as they are and reproduce their logits.
/// </summary>
public class HfReferenceTests
{
    static (CausalLanguageModel Model, JsonObject Reference) Load(string name)
    {
        var dir = TestSupport.Fixture("hf", name);
        var model = Pretrained.Create(ModelConfig.Load(dir));
        Pretrained.LoadWeights(model, dir);
        model.eval();
        return (model, (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!);
    }

    [Theory]
    [InlineData("tiny-qwen2")]          // q/k/v biases, GQA 4:2, untied head, single file
    [InlineData("tiny-llama-sharded")]  // no biases, tied head, rope_theta 5e5, five shards + index
    public void Logits_and_hidden_states_match_transformers(string name)
    {
        var (model, r) = Load(name);
        using var noGrad = no_grad();
        var ids = TestSupport.TensorOf(r["input_ids"]!, ScalarType.Int64);
        var hidden = model.Body(model.Embed(ids));
        Assert.True(TestSupport.MaxAbsDiff(hidden, TestSupport.TensorOf(r["last_hidden_state"]!)) < 1e-4);
        Assert.True(TestSupport.MaxAbsDiff(model.Head(hidden), TestSupport.TensorOf(r["logits"]!)) < 1e-5);
    }

    [Theory]
    [InlineData("tiny-qwen2")]
    [InlineData("tiny-llama-sharded")]
    public void Left_padded_batch_matches_transformers(string name)
    {
        var (model, r) = Load(name);
        using var noGrad = no_grad();
        var ids = TestSupport.TensorOf(r["input_ids"]!, ScalarType.Int64);
        var mask = TestSupport.TensorOf(r["padded_attention_mask"]!, ScalarType.Int64);
        var pos = TestSupport.TensorOf(r["padded_position_ids"]!, ScalarType.Int64);
        var expected = TestSupport.TensorOf(r["padded_logits"]!);
        var logits = model.Logits(ids, mask);                      // positions derived from the mask
        var real = mask.to(ScalarType.Bool).unsqueeze(-1);         // compare only unpadded positions
        Assert.True(TestSupport.MaxAbsDiff(logits.masked_fill(real.logical_not(), 0), expected.masked_fill(real.logical_not(), 0)) < 1e-5);
        Assert.True(TestSupport.MaxAbsDiff(model.Logits(ids, mask, pos), logits) < 1e-6);
    }

    [Theory]
    [InlineData("tiny-qwen2")]
    [InlineData("tiny-llama-sharded")]
    public void Greedy_generation_matches_transformers_generate(string name)
    {
        var (model, r) = Load(name);
        var prompt = r["greedy_prompt"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
        var expected = r["greedy_ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
        Assert.Equal(expected, TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = expected.Length }));
    }

    [Fact]
    public void Transformers5_rope_parameters_and_tied_head_are_read()
    {
        var c = ModelConfig.Load(TestSupport.Fixture("hf", "tiny-llama-sharded")).Text;
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.Equal("llama", c.ModelType);
    }
}
