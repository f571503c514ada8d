using System.Text.Json.Nodes;
using GenRecal.Models.Families.Qwen2VL;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Models.Families;

/// <summary>Qwen2-VL's processor sizes and tokenizers against tools/reference/qwen2vl (transformers 4.53's smart_resize,
/// tokenizers.js); the model itself is checked in <see cref="ReferenceParityTests"/>.</summary>
public class Qwen2VlReferenceTests
{
    [Fact]
    public void Smart_resize_matches_the_processor_including_half_to_even_rounding()
    {
        var cases = JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("qwen2vl", "smart_resize_cases.json")))!["cases"]!.AsArray();
        foreach (var c in cases)
        {
            int factor = (int)c!["factor"]!;
            var s = new Qwen2VlSettings { PatchSize = factor / 2, MergeSize = 2, MinPixels = (int)c["min_pixels"]!, MaxPixels = (int)c["max_pixels"]! };
            Assert.Equal(((int)c["resized_height"]!, (int)c["resized_width"]!), Qwen2VlImages.SmartResize((int)c["height"]!, (int)c["width"]!, s, "test"));
        }
    }

    [Theory]
    [InlineData("qwen2-vl")]
    [InlineData("qwen2.5-vl")]
    public void The_fixture_tokenizers_encode_and_decode_as_tokenizers_js_does(string variant)
    {
        var v = JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("qwen2vl", "tokenizer_cases.json")))!["variants"]![variant]!;
        var tok = ModelTokenizer.Load(TestSupport.Fixture("qwen2vl", variant));
        int[] Ints(JsonNode n) => n.AsArray().Select(x => (int)x!).ToArray();
        foreach (var c in v["encode"]!.AsArray())
            Assert.Equal(Ints(c!["ids"]!), tok.Encode((string)c["text"]!));
        foreach (var c in v["decode"]!.AsArray())
            Assert.Equal((string)c!["text"]!, tok.Decode(Ints(c["ids"]!), skipSpecial: (bool)c["skip_special_tokens"]!));
    }
}
