using System.Text.Json.Nodes;
using GenRecal.Models;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

public class PretrainedTests
{
    internal static (InternVisionLanguageModel Model, ModelConfig Config, ModelTokenizer Tokenizer) TinyVlm(long seed = 1)
    {
        var tok = ModelTokenizer.BuildCompact("gpt2", ["What colour is the circle? red blue green", "How many? 1 2 3"]);
        var config = new ModelConfig(TestSupport.TinyText(vocab: tok.VocabSize), TestSupport.TinyVision(), tok.ImageTokenId);
        var model = new InternVisionLanguageModel(config);
        TestSupport.Randomize(model, seed);
        return (model, config, tok);
    }

    [Fact]
    public void Save_then_load_is_bit_exact_for_every_parameter_and_config_round_trips()
    {
        var (model, config, tok) = TinyVlm();
        var dir = TestSupport.TempDir();
        Pretrained.Save(model, config, tok, dir);
        var loaded = Pretrained.Load(dir);
        Assert.Equal(config.ToJson().ToJsonString(), loaded.Config.ToJson().ToJsonString());
        var a = Pretrained.StateDict(model);
        var b = Pretrained.StateDict(loaded.Model);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (k, t) in a) Assert.Equal(t.bytes.ToArray(), b[k].bytes.ToArray());
        Assert.Contains("vision_model.encoder.layers.0.attn.qkv.weight", a.Keys);
        Assert.Contains("mlp1.3.weight", a.Keys);
        Assert.Equal(tok.Encode("What colour?"), loaded.Tokenizer.Encode("What colour?"));
    }

    [Fact]
    public void Tied_checkpoints_have_no_lm_head_and_load_back()
    {
        var model = new CausalLanguageModel(TestSupport.TinyText(tie: true));
        var tok = ModelTokenizer.BuildCompact("gpt2", ["abc"]);
        var config = new ModelConfig(TestSupport.TinyText(tie: true), null, null);
        var dir = TestSupport.TempDir();
        Pretrained.Save(model, config, tok, dir);
        Assert.DoesNotContain("lm_head.weight", Pretrained.StateDict(model).Keys);
        Assert.True(Pretrained.Load(dir).Config.Text.TieWordEmbeddings);
    }

    static string SavedTinyDir()
    {
        var (model, config, tok) = TinyVlm();
        var dir = TestSupport.TempDir();
        Pretrained.Save(model, config, tok, dir);
        return dir;
    }

    static void EditConfig(string dir, Action<JsonObject> edit)
    {
        var path = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    [Fact]
    public void A_missing_config_key_is_named()
    {
        var dir = SavedTinyDir();
        EditConfig(dir, j => j.Remove("hidden_size"));
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("'hidden_size'", e.Message);
    }

    [Fact]
    public void A_shape_mismatch_between_config_and_weights_is_reported()
    {
        var dir = SavedTinyDir();
        EditConfig(dir, j => j["intermediate_size"] = 80);
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("mlp.gate_proj.weight", e.Message);
        Assert.Contains("[80, 32]", e.Message);
    }

    static void EditWeights(string dir, Action<Dictionary<string, Tensor>> edit)
    {
        var path = Path.Combine(dir, Pretrained.WeightsFileName);
        var tensors = GenRecal.Tensors.Safetensors.Load(path);
        edit(tensors);
        GenRecal.Tensors.Safetensors.Save(path, tensors);
    }

    [Fact]
    public void Missing_and_unexpected_keys_are_listed()
    {
        var dir = SavedTinyDir();
        EditWeights(dir, t =>
        {
            t.Remove("model.norm.weight");
            t["model.extra.weight"] = zeros(2);
        });
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("missing keys: model.norm.weight", e.Message);
        Assert.Contains("unexpected keys: model.extra.weight", e.Message);
    }

    [Fact]
    public void Integer_weights_are_rejected()
    {
        var dir = SavedTinyDir();
        EditWeights(dir, t => t["model.norm.weight"] = ones(32, ScalarType.Int64));
        Assert.Contains("must be floating point", Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir)).Message);
    }

    [Fact]
    public void A_tokenizer_larger_than_the_embedding_is_a_mismatch()
    {
        var dir = SavedTinyDir();
        EditConfig(dir, j => j["vocab_size"] = 10);
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("vocab_size 10", e.Message);
    }

    [Fact]
    public void An_unknown_tokenizer_is_named()
    {
        var dir = SavedTinyDir();
        var path = Path.Combine(dir, ModelTokenizer.ConfigFileName);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"gpt2\"", "\"sentencepiece_xyz\""));
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("unknown tokenizer 'sentencepiece_xyz'", e.Message);
        Assert.Contains(ModelTokenizer.ConfigFileName, e.Message);
    }

    [Fact]
    public void A_directory_without_tokenizer_files_is_reported()
    {
        var dir = SavedTinyDir();
        File.Delete(Path.Combine(dir, ModelTokenizer.ConfigFileName));
        Assert.Contains("no tokenizer found", Assert.Throws<FileNotFoundException>(() => Pretrained.Load(dir)).Message);
    }

    [Fact]
    public void A_vlm_is_written_as_genrecal_vlm_never_as_a_text_model_and_old_directories_still_load()
    {
        var (model, config, tok) = TinyVlm();
        var dir = TestSupport.TempDir();
        Pretrained.Save(model, config, tok, dir);
        var path = Path.Combine(dir, "config.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        // transformers would load architectures Qwen2ForCausalLM as a text model and drop the vision weights silently
        Assert.Equal("genrecal_vlm", (string)json["model_type"]!);
        Assert.DoesNotContain("Qwen2ForCausalLM", json["architectures"]!.ToJsonString());
        Assert.Equal("qwen2", (string)json["text_model_type"]!);
        using (var loaded = Pretrained.Load(dir)) Assert.Equal("qwen2", loaded.Config.Text.ModelType);
        // a directory written before: model_type qwen2 with a vision_config
        json["model_type"] = "qwen2";
        json.AsObject().Remove("text_model_type");
        File.WriteAllText(path, json.ToJsonString());
        using var old = Pretrained.Load(dir);
        Assert.NotNull(old.Vlm);
    }
}
