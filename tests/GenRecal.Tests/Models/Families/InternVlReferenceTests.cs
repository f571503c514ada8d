using System.Text.Json.Nodes;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Models.Families.InternVL;
using GenRecal.Tensors;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models.Families;

/// <summary>
/// Parity with InternVL's own code on tiny random checkpoints in its original format. The expectations come from
/// tools/reference/internvl (a plain-PyTorch port of InternVL's modeling code written without this project's C#,
/// PIL for images, tokenizers.js for ids): a Qwen2 LM with InternViT-300M options (layer norm, qkv bias) and fp32
/// weights; a LLaMA LM with InternViT-6B options (qk-norm, RMS norms, no qkv bias), bf16 weights, the Hermes-2
/// template, and a position grid interpolated from 2×2 to 4×4.
/// </summary>
public class InternVlReferenceTests
{
    static int[] Ints(JsonNode node) => node.AsArray().Select(n => (int)n!).ToArray();

    [Fact]
    public void Tile_grids_match_dynamic_preprocess()
    {
        var cases = JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("internvl", "tiling_cases.json")))!["cases"]!.AsArray();
        foreach (var c in cases)
        {
            int w = (int)c!["width"]!, h = (int)c["height"]!, size = (int)c["image_size"]!;
            var tiling = new ImageTiling((int)c["min_num"]!, (int)c["max_num"]!, true);
            var grid = Ints(c["grid_cols_rows"]!);
            Assert.Equal((grid[0], grid[1]), DynamicTiling.Grid(w, h, tiling, size));
            Assert.Equal((int)c["num_patches_with_thumbnail"]!, DynamicTiling.Count(w, h, tiling, size));
        }
    }

    [Theory]
    [InlineData("tokenizer.json")]
    [InlineData("vocab.json")]
    public void The_fixture_tokenizer_encodes_and_decodes_as_tokenizers_js_does(string source)
    {
        var cases = JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("internvl", "tokenizer_cases.json")))!;
        var dir = TestSupport.TempDir();
        // the same vocabulary as the fast file alone or as InternVL2_5-1B's slow files alone
        var files = source == "tokenizer.json"
            ? new[] { "tokenizer.json", "tokenizer_config.json" }
            : new[] { "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json" };
        foreach (var f in files) File.Copy(Path.Combine(TestSupport.Fixture("internvl", "internvl2_5-qwen2"), f), Path.Combine(dir, f));
        var tok = ModelTokenizer.Load(dir);
        foreach (var c in cases["encode"]!.AsArray())
            Assert.Equal(Ints(c!["ids"]!), tok.Encode((string)c["text"]!));
        foreach (var c in cases["decode"]!.AsArray())
            Assert.Equal((string)c!["text"]!, tok.Decode(Ints(c["ids"]!), skipSpecial: (bool)c["skip_special_tokens"]!));
    }

    [Fact]
    public void An_InternLM2_checkpoint_saves_back_with_its_packed_wqkv_and_original_names()
    {
        var dir = TestSupport.Fixture("internvl", "internvl2_5-internlm2");
        using var pm = Pretrained.Load(dir);
        var a = Path.Combine(TestSupport.TempDir(), "a");
        GenRecal.Models.Pretrained.Save(pm.Model, pm.Config, pm.Tokenizer, a);
        var original = Safetensors.Load(Path.Combine(dir, "model.safetensors"));
        var saved = Safetensors.Load(Path.Combine(a, "model.safetensors"));
        Assert.Equal(original.Keys.Order(), saved.Keys.Order()); // wqkv, wo, w1-3, tok_embeddings, output: the file's own names
        foreach (var (k, t) in original) Assert.True(t.to(ScalarType.Float32).allclose(saved[k], 0, 0), k);
        using var again = Pretrained.Load(a);
        var b = Path.Combine(TestSupport.TempDir(), "b");
        GenRecal.Models.Pretrained.Save(again.Model, again.Config, again.Tokenizer, b);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
    }
}
