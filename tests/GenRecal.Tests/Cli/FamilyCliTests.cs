using System.Text.Json.Nodes;
using GenRecal.Cli;

namespace GenRecal.Tests.Cli;

/// <summary>generate and inspect on real-family checkpoints (InternVL's original format), against the reference fixtures.</summary>
[Collection("console")]
public class FamilyCliTests
{
    static string Variant(string name) => TestSupport.Fixture("internvl", name);

    [Theory]
    [InlineData("internvl", "internvl2_5-qwen2", "image")]
    [InlineData("internvl", "internvl2_5-qwen2", "text")]
    [InlineData("internvl", "internvl2_5-llama-6bvit", "image")]
    [InlineData("qwen2vl", "qwen2-vl", "image")]
    [InlineData("qwen2vl", "qwen2.5-vl", "image")]
    [InlineData("qwen2vl", "qwen2.5-vl", "text")]
    public void Generate_applies_the_family_template_and_matches_the_reference(string family, string variant, string kind)
    {
        var dir = TestSupport.Fixture(family, variant);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        var c = expected["cases"]![kind]!;
        // the CLI is given the bare question: the family's template places the image block
        var question = GenRecal.Tests.Models.Families.ReferenceParityTests.Question(c);
        var args = new List<string> { "generate", "--model", dir, "--prompt", question, "--max-new-tokens", "8", "--json" };
        if (kind == "image") args.AddRange(["--image", TestSupport.Fixture(family, "image.png")]);
        var (code, output, err) = CliTests.Run([.. args]);
        Assert.True(code == ExitCodes.Success, err);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(c["input_ids"]!.AsArray().Select(n => (int)n!), json["prompt_token_ids"]!.AsArray().Select(n => (int)n!));
        int eos = (int)expected["eos_token_id"]!;
        Assert.Equal(c["generated_ids"]!.AsArray().Select(n => (int)n!).TakeWhile(t => t != eos), json["token_ids"]!.AsArray().Select(n => (int)n!));
    }

    [Fact]
    public void Raw_prompt_is_tokenized_as_given()
    {
        var (code, output, err) = CliTests.Run("generate", "--model", Variant("internvl2_5-qwen2"), "--prompt", "<|im_start|>user\nhi", "--raw", "--max-new-tokens", "1", "--json");
        Assert.True(code == ExitCodes.Success, err);
        var ids = JsonNode.Parse(output)!["prompt_token_ids"]!.AsArray().Select(n => (int)n!).ToArray();
        Assert.Equal(601, ids[0]); // <|im_start|> in the fixture's tokenizer.json, no system block before it
    }

    [Theory]
    [InlineData("internvl", "internvl2_5-qwen2", "internvl_chat;language_model.model;tiles of 56px;4 tokens per tile;'internvl2_5';<IMG_CONTEXT>")]
    [InlineData("internvl-hf", "internvl3-hf", "internvl;model.vision_tower;model.multi_modal_projector;model.language_model;tiles of 56px;<IMG_CONTEXT>")]
    [InlineData("qwen2vl", "qwen2-vl", "qwen2_vl;visual;visual.merger;multiples of 28px;<|image_pad|>;You are a helpful assistant.")]
    [InlineData("qwen2vl", "qwen2.5-vl", "qwen2_vl;window attention;tied")]
    public void Inspect_names_the_family_components_image_rule_and_template(string family, string variant, string expected)
    {
        var (code, output, err) = CliTests.Run("inspect", "--model", TestSupport.Fixture(family, variant));
        Assert.True(code == ExitCodes.Success, err);
        foreach (var s in expected.Split(';'))
            Assert.Contains(s, output);
    }

    [Fact]
    public void An_unsupported_family_exits_2_listing_the_supported_ones()
    {
        var dir = TestSupport.TempDir();
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"]}""");
        var (code, _, err) = CliTests.Run("inspect", "--model", dir);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("mllama", err);
        Assert.Contains("internvl_chat", err);
        Assert.Contains("qwen2", err);
    }
}
