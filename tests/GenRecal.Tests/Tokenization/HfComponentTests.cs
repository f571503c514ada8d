using System.Text.Json.Nodes;
using GenRecal.Tokenization.Hf;

namespace GenRecal.Tests.Tokenization;

/// <summary>Pieces of the tokenizer.json pipeline against HF's documented examples and Oniguruma's semantics.</summary>
public class HfComponentTests
{
    static string[] Split(string json, string text) =>
        HfPreTokenizer.Read(JsonNode.Parse(json), "(test)")!.Split(new HfPiece(text, true)).Select(p => p.Text).ToArray();

    // HF's documentation of SplitDelimiterBehavior, for the delimiter "-" in "the-final--countdown"
    [Theory]
    [InlineData("Removed", new[] { "the", "final", "countdown" })]
    [InlineData("Isolated", new[] { "the", "-", "final", "-", "-", "countdown" })]
    [InlineData("MergedWithPrevious", new[] { "the-", "final-", "-", "countdown" })]
    [InlineData("MergedWithNext", new[] { "the", "-final", "-", "-countdown" })]
    [InlineData("Contiguous", new[] { "the", "-", "final", "--", "countdown" })]
    public void Split_behaviours_follow_hf_documentation(string behavior, string[] expected)
    {
        Assert.Equal(expected, Split($$"""{"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}", "invert": false}""", "the-final--countdown"));
    }

    [Fact]
    public void Inverted_split_keeps_the_matches_as_pieces()
    {
        Assert.Equal(["Hey", "friend", "!"], Split("""{"type": "Whitespace"}""", "Hey friend!"));
        Assert.Equal(["a1", "b22"], Split("""{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Removed", "invert": true}""", "a1, b22"));
    }

    [Fact]
    public void Possessive_quantifiers_become_atomic_groups()
    {
        var possessive = HfRegex.Compile("a++a", "(test)");
        Assert.DoesNotMatch(possessive, "aaaa"); // a++ takes every a and gives none back
        Assert.Matches(HfRegex.Compile("a+a", "(test)"), "aaaa");
        var digits = HfRegex.Compile(@"\p{N}{1,3}+", "(test)");
        Assert.Equal(["123", "45"], digits.Matches("12345").Select(m => m.Value));
        Assert.Equal([" x", "y"], HfRegex.Compile(@" ?+\p{L}", "(test)").Matches(" xy").Select(m => m.Value));
    }

    [Fact]
    public void Classes_match_whole_code_points_outside_the_bmp()
    {
        var letters = HfRegex.Compile(@"\p{L}+", "(test)");
        Assert.Equal("𝐀𝐁𝐂", letters.Match("--𝐀𝐁𝐂--").Value);           // U+1D400.. are letters (Lu)
        Assert.Equal("𠀀x", letters.Match("1𠀀x2").Value);              // CJK extension B (Lo)
        var other = HfRegex.Compile(@"[^\s\p{L}\p{N}]+", "(test)");
        Assert.Equal("😀👍🏽", other.Match("a 😀👍🏽 b").Value);         // symbols, modifiers: one run
        Assert.DoesNotMatch(other, "𝐀");                              // a letter's surrogates are not "other"
        Assert.Equal("😀", HfRegex.Compile(".", "(test)").Match("😀").Value);
        Assert.Equal("😀😀", HfRegex.Compile("😀+", "(test)").Match("😀😀").Value);
    }

    [Fact]
    public void Shorthands_take_onigurumas_unicode_sets_and_case_folding_is_culture_free()
    {
        var space = HfRegex.Compile(@"\s", "(test)");
        Assert.Matches(space, "\u3000");
        Assert.Matches(space, "\u0085");
        Assert.DoesNotMatch(space, "\uFEFF");   // JavaScript's \s has it, Oniguruma's does not
        Assert.DoesNotMatch(space, "\u200B");
        var contractions = HfRegex.Compile("(?i:'s|'t|'re|'ll)", "(test)");
        Assert.Equal(["'T", "'RE", "'ll"], contractions.Matches("DON'T You'RE we'll").Select(m => m.Value));
        Assert.Equal(["I", "i"], HfRegex.Compile("(?i:i)", "(test)").Matches("Iİıi").Select(m => m.Value)); // no Turkish dotted/dotless I
    }

    [Theory]
    [InlineData(@"[[:alpha:]]")]
    [InlineData(@"[a-z&&[^aeiou]]")]
    [InlineData(@"\Gx")]
    [InlineData(@"(?m:.)")]
    [InlineData(@"\p{Greek}")]
    public void Constructs_without_a_faithful_translation_are_refused(string pattern)
    {
        var e = Assert.Throws<InvalidDataException>(() => HfRegex.Compile(pattern, "some/tokenizer.json"));
        Assert.Contains("some/tokenizer.json", e.Message);
        Assert.Contains(pattern, e.Message);
    }

    [Fact]
    public void Line_anchors_are_onigurumas()
    {
        // Oniguruma's $ is end of line (before any \n); .NET's would also match only at the very end
        Assert.Equal(2, HfRegex.Compile("x$", "(test)").Matches("ax\nbx").Count);
        Assert.Equal(2, HfRegex.Compile("^a", "(test)").Matches("ab\nab").Count);
    }
}
