using System.Text.Json.Nodes;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Tensors;
using GenRecal.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models.Families;

/// <summary>
/// Parity with each family's own code on tiny random checkpoints in the family's layout. Expectations come from the
/// references in tools/reference (plain-PyTorch ports of the families' modeling code, written without this project's
/// C#; PIL for images; tokenizers.js for ids; the chat templates rendered by @huggingface/jinja where the family has one):
/// - internvl/internvl2_5-qwen2: InternViT-300M options (layer norm, qkv bias), Qwen2 LM, fp32 weights, internvl2_5 template;
/// - internvl/internvl2_5-llama-6bvit: InternViT-6B options (qk-norm, RMS norms, no qkv bias), LLaMA LM, bf16 weights,
///   Hermes-2 template, position grid interpolated 2×2 → 4×4;
/// - internvl/internvl2_5-internlm2: an InternLM2 LM (packed wqkv in InternLM2's grouped layout, bf16 weights) with a
///   SentencePiece InternLM2Tokenizer that adds BOS;
/// - qwen2vl/qwen2-vl: Qwen2-VL (LayerNorm, QuickGELU encoder, M-RoPE LM), fp32;
/// - internvl-hf/internvl3-hf: the same network in transformers' -hf layout (separate q/k/v, GotOcr2 processor,
///   image_seq_length, no default system message), whose reference also converts the original-format fixture with
///   transformers' conversion mapping and reproduces that fixture's logits;
/// - qwen2vl/qwen2.5-vl: Qwen2.5-VL (RMSNorm, SwiGLU encoder, four attention windows and one full-attention block,
///   tied embeddings), bf16 weights.
/// Logits are compared within the 1e-3 (measured here: InternVL below 1e-4; Qwen2.5-VL 1.4e-4, the random
/// vision tower amplifying float32 rounding — the reference's own second implementation differs from it by up to 2.9e-4);
/// greedy tokens must be identical (the smallest top-1/top-2 margin in the references is 0.28).
/// The three checkpoints that transformers itself supports (InternVL -hf, Qwen2-VL, Qwen2.5-VL) are also compared with
/// what transformers 5.17 computes (hf-transformers.{json,safetensors}, written by tools/hf-fixtures/check_vlm_fixtures.py
/// on a GPU machine's PyTorch 2.11, float32 eager, slow PIL processors): its processor's pixel values and ids, its logits
/// at every prompt position, its M-RoPE positions and its 8 greedy tokens.
/// </summary>
public class ReferenceParityTests
{
    /// <summary>The independent ports' expectations (tools/reference).</summary>
    const string Port = "expected";
    /// <summary>HF transformers' own outputs for the checkpoints it can load.</summary>
    const string Transformers = "hf-transformers";

    public static TheoryData<string, string, string> Checkpoints => new()
    {
        { "internvl", "internvl2_5-qwen2", Port }, { "internvl", "internvl2_5-llama-6bvit", Port }, { "internvl", "internvl2_5-internlm2", Port },
        { "qwen2vl", "qwen2-vl", Port }, { "qwen2vl", "qwen2.5-vl", Port }, { "internvl-hf", "internvl3-hf", Port },
        { "qwen2vl", "qwen2-vl", Transformers }, { "qwen2vl", "qwen2.5-vl", Transformers }, { "internvl-hf", "internvl3-hf", Transformers },
    };

    /// <summary>One source's expectations for a checkpoint. The cases' messages and prompts always come from expected.json;
    /// the numbers from <paramref name="Source"/>.safetensors, whose key names differ between the two writers.</summary>
    sealed record Reference(string Source, JsonNode Expected, Dictionary<string, Tensor> Tensors, string Dir, string Image)
    {
        bool FromTransformers => Source == Transformers;
        public Tensor PixelValues => Tensors[FromTransformers ? "processor.pixel_values" : "pixel_values"];
        public int[] PromptIds(string kind) => FromTransformers
            ? Tensors[$"processor.{kind}.input_ids"].data<long>().Select(i => (int)i).ToArray()
            : Ints(Expected["cases"]![kind]!["input_ids"]!);
        public int[] GeneratedIds(string kind) => FromTransformers
            ? Tensors[$"{kind}.generated_ids"].data<long>().Select(i => (int)i).ToArray()
            : Ints(Expected["cases"]![kind]!["generated_ids"]!);
        public Tensor? PromptLogits(string kind) => Tensors.GetValueOrDefault($"{kind}.prompt_logits");
        public Tensor LastLogits(string kind) => FromTransformers ? Tensors[$"{kind}.prompt_logits"][-1] : Tensors[$"{kind}.first_step_logits"];
    }

    static Reference Load(string family, string name, string source)
    {
        var dir = TestSupport.Fixture(family, name);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        // the -hf fixture uses the original-format fixture's image by relative path
        var image = expected["preprocess"]?["image"] is JsonValue v ? Path.GetFullPath(Path.Combine(dir, (string)v!)) : TestSupport.Fixture(family, "image.png");
        return new(source, expected, Safetensors.Load(Path.Combine(dir, source + ".safetensors")), dir, image);
    }

    static int[] Ints(JsonNode node) => node.AsArray().Select(n => (int)n!).ToArray();

    /// <summary>The user's text as the CLI or a data line gives it: InternVL's question without chat()'s "&lt;image&gt;\n"
    /// prefix (the template adds it), or the text part of a Qwen2-VL message.</summary>
    internal static string Question(JsonNode c) => c["question"] is { } q
        ? ((string)q!).Replace("<image>\n", "")
        : c["messages"]!.AsArray().Single(m => (string)m!["role"]! == "user")!["content"]!.AsArray()
            .Where(p => (string)p!["type"]! == "text").Select(p => (string)p!["text"]!).Single();

    /// <summary>A system turn in the reference's messages, which the project's data and CLI do not carry.</summary>
    static bool HasSystemTurn(JsonNode c) => c["messages"]?.AsArray().Any(m => (string)m!["role"]! == "system") ?? false;

    static void Close(Tensor expected, Tensor actual, double atol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= atol, $"{what}: max |difference| {diff:g3} > {atol:g3}");
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Pixel_values_and_image_token_count_match_the_processor(string family, string name, string source)
    {
        var r = Load(family, name, source);
        using var pm = Pretrained.Load(r.Dir);
        var image = pm.Vlm!.LoadImage(r.Image);
        Close(r.PixelValues, image.Values, 1e-6, "pixel_values");
        int pads = r.PromptIds("image").Count(i => i == pm.Config.ImageTokenId);
        Assert.Equal(pads, pm.Vlm.ImageTokens(image));
        Assert.Equal(pads, pm.Vlm.ImageTokensFor(r.Image));
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Prompt_ids_follow_the_family_template_and_tokenizer(string family, string name, string source)
    {
        var r = Load(family, name, source);
        using var pm = Pretrained.Load(r.Dir);
        foreach (var kind in new[] { "image", "text" })
        {
            var c = r.Expected["cases"]![kind]!;
            if (HasSystemTurn(c))
            {
                // the template cannot add a per-conversation system turn; the tokenizer must still give the reference's ids
                Assert.Equal(r.PromptIds(kind), pm.Tokenizer.Encode((string)c["prompt"]!));
                continue;
            }
            int imageTokens = kind == "image" ? pm.Vlm!.ImageTokensFor(r.Image) : 0;
            var ids = ChatEncoder.EncodePrompt(pm.Tokenizer, Question(c), imageTokens);
            Assert.Equal(r.PromptIds(kind), ids);
            // the reference's prompt is chat()'s query; a tokenizer with add_bos_token puts BOS before it
            int skip = r.Expected["bos_token_id"] is { } bos && ids[0] == (int)bos ? 1 : 0;
            Assert.Equal((string)c["prompt"]!, pm.Tokenizer.Decode(ids.Skip(skip)));
        }
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Logits_positions_and_greedy_tokens_match_the_reference(string family, string name, string source)
    {
        var r = Load(family, name, source);
        using var pm = Pretrained.Load(r.Dir);
        using var noGrad = no_grad();
        int eos = (int)r.Expected["eos_token_id"]!;
        foreach (var kind in new[] { "image", "text" })
        {
            var ids = r.PromptIds(kind);
            var images = kind == "image" ? ImageBatch.Of([pm.Vlm!.LoadImage(r.Image)]) : null;
            var idTensor = tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0);
            var positions = pm.Vlm!.PositionIds(idTensor, null, images?.Grids);
            if (r.Tensors.TryGetValue($"{kind}.position_ids", out var expectedPositions))
                Assert.Equal(expectedPositions.data<long>().ToArray(), (positions ?? arange(ids.Length).expand(3, -1)).reshape(3, -1).data<long>().ToArray());
            var logits = pm.Model.Head(pm.Model.Body(pm.Vlm.EmbedMultimodal(idTensor, images), positionIds: positions))[0]; // [T, V]
            Close(r.LastLogits(kind), logits[-1], 1e-3, $"{kind} first-step logits");
            if (r.PromptLogits(kind) is { } all) Close(all, logits, 1e-3, $"{kind} prompt logits");
            var generated = TextGenerator.Generate(pm.Model, ids, new GenerationOptions { MaxNewTokens = 8, StopTokens = [eos] }, images);
            Assert.Equal(r.GeneratedIds(kind).TakeWhile(t => t != eos), generated);
        }
    }

    /// <summary>Each family's whole network cast to bf16 (what mixed precision computes in) runs an image prompt, and its
    /// logits stay within bf16's precision of float32's (8 significant bits, a few roundings deep: the same 5 % of the
    /// logits' scale as the text model's test).</summary>
    [Theory]
    [InlineData("internvl", "internvl2_5-qwen2")]
    [InlineData("internvl", "internvl2_5-llama-6bvit")]
    [InlineData("qwen2vl", "qwen2-vl")]
    [InlineData("qwen2vl", "qwen2.5-vl")]
    [InlineData("internvl-hf", "internvl3-hf")]
    public void A_vision_language_model_cast_to_bf16_runs_within_bf16_precision(string family, string name)
    {
        var r = Load(family, name, Port);
        using var pm = Pretrained.Load(r.Dir);
        using var noGrad = no_grad();
        var ids = tensor(r.PromptIds("image").Select(i => (long)i).ToArray()).unsqueeze(0);
        using var images = ImageBatch.Of([pm.Vlm!.LoadImage(r.Image)])!;
        var vlm = pm.Vlm!;
        Tensor Logits() => pm.Model.Head(pm.Model.Body(vlm.EmbedMultimodal(ids, images), positionIds: vlm.PositionIds(ids, null, images.Grids)))[0];
        var full = Logits();
        pm.Model.to(ScalarType.BFloat16);
        var half = Logits();
        Assert.Equal(ScalarType.BFloat16, half.dtype);
        double scale = full.abs().max().item<float>(), diff = (half.to(ScalarType.Float32) - full).abs().max().item<float>();
        Assert.True(diff < 0.05 * scale, $"max |bf16 − fp32| {diff:g3} against logits up to {scale:g3}");
        Assert.True(diff > 0, "the cast changed nothing: the model did not run in bf16");
    }
}
