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
public class InternVlParityTests
{
    public static TheoryData<string> Variants => new() { "internvl2_5-qwen2", "internvl2_5-llama-6bvit" };

    static (JsonNode Expected, Dictionary<string, Tensor> Tensors, string Dir) Fixture(string variant)
    {
        var dir = TestSupport.Fixture("internvl", variant);
        return (JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!, Safetensors.Load(Path.Combine(dir, "expected.safetensors")), dir);
    }

    static int[] Ints(JsonNode node) => node.AsArray().Select(n => (int)n!).ToArray();

    static void Close(Tensor expected, Tensor actual, double atol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= atol, $"{what}: max |difference| {diff:g3} > {atol:g3}");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Image_tiles_and_pixel_values_match_load_image(string variant)
    {
        var (expected, tensors, dir) = Fixture(variant);
        using var pm = Pretrained.Load(dir);
        var pixels = pm.Vlm!.LoadImage(TestSupport.Fixture("internvl", "image.png")).Values;
        Assert.Equal((int)expected["preprocess"]!["num_patches"]!, (int)pixels.shape[0]);
        Close(tensors["pixel_values"], pixels, 1e-6, "pixel_values");
        Assert.Equal((int)expected["num_image_token"]!, ((InternVisionLanguageModel)pm.Model).TokensPerTile);
        Assert.Equal((int)expected["img_context_token_id"]!, pm.Config.ImageTokenId);
    }

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
    [MemberData(nameof(Variants))]
    public void Logits_and_greedy_tokens_match_the_reference(string variant)
    {
        var (expected, tensors, dir) = Fixture(variant);
        using var pm = Pretrained.Load(dir);
        using var noGrad = no_grad();
        var eos = (int)expected["eos_token_id"]!;
        foreach (var name in new[] { "image", "text" })
        {
            var c = expected["cases"]![name]!;
            var ids = Ints(c["input_ids"]!);
            var pixels = name == "image" ? tensors["pixel_values"] : null;
            var idTensor = tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0);
            var logits = pm.Model.Head(pm.Model.Body(pm.Vlm!.EmbedMultimodal(idTensor, pixels)))[0]; // [T, V]
            Close(tensors[$"{name}.first_step_logits"], logits[-1], 1e-4, $"{name} first-step logits");
            if (name == "image") Close(tensors["image.prompt_logits"], logits, 1e-4, "image prompt logits");
            var generated = TextGenerator.Generate(pm.Model, ids, new GenerationOptions { MaxNewTokens = 8, StopTokens = [eos] }, pixels is null ? null : new ImageBatch(pixels, null));
            var want = Ints(c["generated_ids"]!).TakeWhile(t => t != eos);
            Assert.Equal(want, generated);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Prompt_ids_follow_the_family_template_and_tokenizer(string variant)
    {
        var (expected, _, dir) = Fixture(variant);
        using var pm = Pretrained.Load(dir);
        foreach (var name in new[] { "image", "text" })
        {
            var c = expected["cases"]![name]!;
            int imageTokens = name == "image" ? pm.Vlm!.ImageTokensFor(TestSupport.Fixture("internvl", "image.png")) : 0;
            var ids = ChatEncoder.EncodePrompt(pm.Tokenizer, (string)c["question"]!, imageTokens);
            Assert.Equal((string)c["prompt"]!, pm.Tokenizer.Decode(ids));
            Assert.Equal(Ints(c["input_ids"]!), ids);
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
}
