using GenRecal.Models;
using GenRecal.Models.Families;
using GenRecal.Tensors;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models.Families;

/// <summary>InternVL's -hf layout beyond the reference parity: save round trip, the earlier conversion's key prefixes,
/// and added tokens past the embedding.</summary>
public class InternVlHfTests
{
    static string Fixture => TestSupport.Fixture("internvl-hf", "internvl3-hf");

    static string Copy()
    {
        var dir = TestSupport.TempDir();
        foreach (var f in Directory.GetFiles(Fixture)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    [Fact]
    public void Save_writes_transformers_names_with_split_qkv_and_round_trips_byte_for_byte()
    {
        using var pm = Pretrained.Load(Fixture);
        Assert.Same(ModelFamilies.InternVLHf, pm.Config.Family);
        var a = Path.Combine(TestSupport.TempDir(), "a");
        Pretrained.Save(pm.Model, pm.Config, pm.Tokenizer, a);
        var original = Safetensors.Load(Path.Combine(Fixture, "model.safetensors"));
        var saved = Safetensors.Load(Path.Combine(a, "model.safetensors"));
        Assert.Equal(original.Keys.Order(), saved.Keys.Order());
        foreach (var (k, t) in original) Assert.True(t.to(ScalarType.Float32).allclose(saved[k], 0, 0), k);
        using var again = Pretrained.Load(a);
        var b = Path.Combine(TestSupport.TempDir(), "b");
        Pretrained.Save(again.Model, again.Config, again.Tokenizer, b);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        // the processor settings and chat template travel with the weights, unchanged
        foreach (var f in new[] { "preprocessor_config.json", "processor_config.json", "chat_template.jinja", "generation_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(Fixture, f)), File.ReadAllBytes(Path.Combine(b, f)));
    }

    [Fact]
    public void A_checkpoint_with_the_earlier_conversion_prefixes_loads_the_same_weights()
    {
        var dir = Copy();
        var path = Path.Combine(dir, "model.safetensors");
        var renamed = Safetensors.Load(path).ToDictionary(kv => kv.Key switch
        {
            var k when k.StartsWith("model.vision_tower.") => k["model.".Length..],
            var k when k.StartsWith("model.multi_modal_projector.") => k["model.".Length..],
            var k when k.StartsWith("model.language_model.") => "language_model.model." + k["model.language_model.".Length..],
            var k when k.StartsWith("lm_head.") => "language_model." + k,
            var k => k,
        }, kv => kv.Value);
        Assert.DoesNotContain(renamed.Keys, k => k.StartsWith("model."));
        Safetensors.Save(path, renamed, new Dictionary<string, string>());
        using var a = Pretrained.Load(Fixture);
        using var b = Pretrained.Load(dir);
        var wa = Pretrained.StateDict(a.Model);
        foreach (var (k, t) in Pretrained.StateDict(b.Model)) Assert.True(t.allclose(wa[k], 0, 0), k);
    }

    [Fact]
    public void A_missing_projection_part_is_named()
    {
        var dir = Copy();
        var path = Path.Combine(dir, "model.safetensors");
        var tensors = Safetensors.Load(path);
        Assert.True(tensors.Remove("model.vision_tower.encoder.layer.1.attention.k_proj.weight"));
        Safetensors.Save(path, tensors, new Dictionary<string, string>());
        var e = Assert.Throws<InvalidDataException>(() => Pretrained.Load(dir));
        Assert.Contains("model.vision_tower.encoder.layer.1.attention.q_proj.weight", e.Message); // left unfused: reported as unexpected
        Assert.Contains("model.vision_tower.encoder.layer.1.attention.qkv.weight", e.Message);    // and the fused weight as missing
    }

    [Fact]
    public void An_added_token_past_the_embedding_loads_but_a_prompt_using_it_is_refused()
    {
        // the fixture's tokenizer has <video> = 612 = vocab_size, as InternVL3-hf's has 151674
        using var pm = Pretrained.Load(Fixture);
        Assert.True(pm.Tokenizer.SpecialId("<video>") >= pm.Config.Text.VocabSize);
        var (code, _, err) = GenRecal.Tests.Cli.CliTests.Run("generate", "--model", Fixture, "--prompt", "<video> hi", "--max-new-tokens", "1");
        Assert.Equal(GenRecal.Cli.ExitCodes.InputError, code);
        Assert.Contains("'<video>' (id 612)", err);
    }
}
