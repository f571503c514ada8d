using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Models.Families;
using GenRecal.Models.Families.InternVL;
using GenRecal.Tokenization;
using GenRecal.Training;

namespace GenRecal.Tests.Models.Families;

/// <summary>InternVL's original checkpoint layout: save/load round trips, refusals, and a cross-family distillation.</summary>
public class InternVlTests
{
    static readonly ChatTemplate Template = new InternVlTemplatesAccess().Template;

    sealed class InternVlTemplatesAccess
    {
        public ChatTemplate Template => ModelTokenizer.ByteLevel().WithTemplate(ChatTemplate.ChatML).Template is var _ ? InternVlTemplatesFor("internvl2_5") : null!;
        static ChatTemplate InternVlTemplatesFor(string name) => typeof(InternVlFamily).Assembly
            .GetType("GenRecal.Models.Families.InternVL.InternVlTemplates")!.GetMethod("For")!.Invoke(null, [name, "test"]) as ChatTemplate ?? throw new InvalidOperationException();
    }

    /// <summary>A tiny InternVL checkpoint (InternViT with class token, layer scale, qk-norm and RMS norms; Qwen2 LM;
    /// dynamic tiling with a thumbnail) with a byte-level tokenizer that has InternVL's added tokens.</summary>
    internal static string TinyInternVl(string dir, long seed = 1, bool qkNorm = true, int selectLayer = -1)
    {
        var tok = ModelTokenizer.ByteLevel(Template);
        var vision = TestSupport.TinyVision(16, 4, 0.5) with
        {
            ClassToken = true, LayerScale = true, QkNormalization = qkNorm, NormType = qkNorm ? "rms_norm" : "layer_norm",
            QkvBias = !qkNorm, PixelShuffleVersion = "v2", SelectLayer = selectLayer, NumHiddenLayers = 2,
        };
        var config = InternVlFamily.Instance.NewConfig(TestSupport.TinyText(vocab: tok.VocabSize), vision, new ImageTiling(1, 4, true));
        using var model = Pretrained.Create(config);
        TestSupport.Randomize(model, seed, 0.1);
        Pretrained.Save(model, config with { ImageTokenId = tok.WithTemplate(Template).ImageTokenId }, tok, dir);
        return dir;
    }

    [Fact]
    public void Checkpoint_uses_InternVLs_own_key_names_and_config_layout()
    {
        var dir = TinyInternVl(TestSupport.TempDir());
        var keys = GenRecal.Tensors.Safetensors.Load(Path.Combine(dir, "model.safetensors")).Keys.ToHashSet();
        foreach (var k in new[] { "vision_model.embeddings.class_embedding", "vision_model.embeddings.position_embedding",
                                  "vision_model.encoder.layers.0.ls1", "vision_model.encoder.layers.1.ls2",
                                  "vision_model.encoder.layers.0.attn.q_norm.weight", "mlp1.0.weight", "mlp1.3.bias",
                                  "language_model.model.embed_tokens.weight", "language_model.model.layers.1.self_attn.q_proj.bias",
                                  "language_model.model.norm.weight", "language_model.lm_head.weight" })
            Assert.Contains(k, keys);
        Assert.DoesNotContain(keys, k => k.StartsWith("model.") || k.StartsWith("lm_head."));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        Assert.Equal("internvl_chat", (string)config["model_type"]!);
        Assert.Equal("qwen2", (string)config["llm_config"]!["model_type"]!);
        Assert.Equal(17, GenRecal.Tensors.Safetensors.Load(Path.Combine(dir, "model.safetensors"))["vision_model.embeddings.position_embedding"].shape[1]); // class slot + 4×4
    }

    [Fact]
    public void Save_round_trip_is_byte_stable_and_bit_exact()
    {
        var a = TinyInternVl(TestSupport.TempDir());
        using var loaded = Pretrained.Load(a);
        Assert.Same(ModelFamilies.InternVL, loaded.Config.Family);
        var b = Path.Combine(TestSupport.TempDir(), "again");
        Pretrained.Save(loaded.Model, loaded.Config, loaded.Tokenizer, b);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        using var reloaded = Pretrained.Load(b);
        Assert.Equal(loaded.Tokenizer.Encode("<img><IMG_CONTEXT></img>\nhi"), reloaded.Tokenizer.Encode("<img><IMG_CONTEXT></img>\nhi"));
    }

    [Fact]
    public void A_prompt_is_laid_out_as_InternVLs_chat_builds_it()
    {
        using var pm = Pretrained.Load(TinyInternVl(TestSupport.TempDir()));
        var tok = pm.Tokenizer;
        // chat(): '<image>\n' + question when the question has no placeholder; the placeholder becomes
        // <img> + <IMG_CONTEXT> × (num_image_token · tiles) + </img>; the MPT template wraps it with the system message
        var ids = ChatEncoder.EncodePrompt(tok, "What is it?", 2 * 4);
        var expected = "<|im_start|>system\n你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。<|im_end|>\n" +
                       "<|im_start|>user\n<img>" + string.Concat(Enumerable.Repeat("<IMG_CONTEXT>", 8)) + "</img>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(expected, tok.Decode(ids));
        Assert.Equal(8, ids.Count(i => i == pm.Config.ImageTokenId));
        Assert.Equal(tok.SpecialId("<IMG_CONTEXT>"), pm.Config.ImageTokenId);
    }

    [Fact]
    public void Select_layer_uses_the_output_of_an_earlier_encoder_layer()
    {
        using var last = Pretrained.Load(TinyInternVl(TestSupport.TempDir(), seed: 3, selectLayer: -1));
        using var earlier = Pretrained.Load(TinyInternVl(TestSupport.TempDir(), seed: 3, selectLayer: -2));
        using var noGrad = TorchSharp.torch.no_grad();
        TorchSharp.torch.manual_seed(0);
        var pixels = TorchSharp.torch.randn(1, 3, 16, 16);
        // the same weights: an encoder cut after layer 1 must equal running only layer 0 of the full one
        var full = ((InternVisionLanguageModel)last.Model).vision_model;
        var expected = full.encoder.Forward(full.embeddings.forward(pixels), 1)[.., 1..];
        Assert.True(((InternVisionLanguageModel)earlier.Model).vision_model.forward(pixels).allclose(expected, 1e-6, 1e-6));
        Assert.False(full.forward(pixels).allclose(expected, 1e-3, 1e-3));
    }

    [Theory]
    [InlineData("missing key", "language_model.model.norm.weight")]
    [InlineData("wrong shape", "mlp1.1.weight")]
    public void A_wrong_checkpoint_is_refused_naming_the_key(string problem, string key)
    {
        var dir = TinyInternVl(TestSupport.TempDir());
        var path = Path.Combine(dir, "model.safetensors");
        var tensors = GenRecal.Tensors.Safetensors.Load(path);
        if (problem == "missing key") tensors.Remove(key);
        else tensors[key] = TorchSharp.torch.zeros(3, 3);
        GenRecal.Tensors.Safetensors.Save(path, tensors, new Dictionary<string, string>());
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains(key, e.Message);
        Assert.Contains(dir, e.Message);
    }

    [Theory]
    [InlineData("llm_config", "rope_scaling", """{"rope_type": "yarn", "factor": 4.0}""", "yarn")]
    [InlineData(null, "template", "\"phi3-chat\"", "phi3-chat")]
    [InlineData(null, "model_type", "\"mllama\"", "internvl_chat")]
    [InlineData("vision_config", "norm_type", "\"batch_norm\"", "batch_norm")]
    [InlineData("llm_config", "architectures", """["Phi3ForCausalLM"]""", "Phi3ForCausalLM")]
    public void Unsupported_settings_are_refused_by_name(string? section, string key, string value, string named)
    {
        var dir = TinyInternVl(TestSupport.TempDir());
        var path = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var target = section is null ? json : json[section]!.AsObject();
        target[key] = JsonNode.Parse(value);
        if (key == "model_type") json.Remove("architectures");
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains(path, e.Message);
        Assert.Contains(named, e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_InternVL_teacher_distils_into_a_student_of_another_family_and_each_keeps_its_layout(bool internVlStudent)
    {
        var root = TestSupport.TempDir();
        var dataDir = Path.Combine(root, "data");
        SyntheticBenchmark.Generate(dataDir, new SyntheticBenchmark.Options(9, 0, 0, Seed: 4));
        var data = Path.Combine(dataDir, "train.jsonl");
        var teacher = TinyInternVl(Path.Combine(root, "teacher"), seed: 5);
        string student;
        if (internVlStudent) student = TinyInternVl(Path.Combine(root, "student"), seed: 6, qkNorm: false);
        else
        {
            var corpus = LlavaDataset.LoadStrict(data).SelectMany(e => e.Turns.Select(t => t.Value)).ToList();
            var tok = ModelTokenizer.BuildCompact("gpt2", corpus, ChatTemplate.Llama3);
            var config = new ModelConfig(TestSupport.TinyText(vocab: tok.VocabSize, hidden: 16, heads: 2, kvHeads: 1, layers: 1), TestSupport.TinyVision(24, 4, 1.0), tok.ImageTokenId);
            using var model = Pretrained.Create(config);
            TestSupport.Randomize(model, 7, 0.05);
            student = Path.Combine(root, "student");
            Pretrained.Save(model, config, tok, student);
        }
        var recipe = new DistillationRecipe(new DistillationPlan
        {
            TeacherDir = teacher, StudentDir = student, DataPath = data, OutDir = Path.Combine(root, "out"),
            Stages = [Stage.Alignment, Stage.Distillation, Stage.FineTuning],
            Config = new TrainingConfig { Steps = new() { [1] = 2, [2] = 2, [3] = 2 }, BatchSize = 3, LrStart = 1e-2, CheckpointEvery = 0 },
        });
        recipe.Run();
        var terms = MetricsLog.Read(Path.Combine(root, "out", "metrics.jsonl"));
        Assert.Equal(6, terms.Count);
        var outDir = Path.Combine(root, "out", "student");
        var type = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!["model_type"]!;
        Assert.Equal(internVlStudent ? "internvl_chat" : "genrecal_vlm", type);
        var keys = GenRecal.Tensors.Safetensors.Load(Path.Combine(outDir, "model.safetensors")).Keys;
        Assert.Equal(internVlStudent, keys.Contains("language_model.model.norm.weight"));
        using var reloaded = Pretrained.Load(outDir);
        Assert.Equal(internVlStudent ? ModelFamilies.InternVL : ModelFamilies.GenRecal, reloaded.Config.Family);
    }
}
