using System.Text.Json.Nodes;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Tokenization;

public class ModelTokenizerTests
{
    [Fact]
    public void HF_tokenizer_json_encodes_like_huggingface_tokenizers()
    {
        var dir = TestSupport.Fixture("hf", "tiny-bpe-tokenizer");
        var tok = ModelTokenizer.FromHfTokenizerJson(Path.Combine(dir, "tokenizer.json"));
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!["cases"]!.AsArray();
        foreach (var c in reference)
        {
            var text = c!["text"]!.GetValue<string>();
            var expected = c["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
            Assert.Equal(expected, tok.Encode(text));
            Assert.Equal(text, tok.Decode(expected));
        }
    }

    [Fact]
    public void Merges_in_string_form_give_the_same_tokens_as_pair_form()
    {
        var dir = TestSupport.Fixture("hf", "tiny-bpe-tokenizer");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))!.AsObject();
        var merges = json["model"]!["merges"]!.AsArray();
        json["model"]!["merges"] = new JsonArray(merges.Select(m => (JsonNode)$"{m![0]} {m[1]}").ToArray());
        var path = Path.Combine(TestSupport.TempDir(), "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        var a = ModelTokenizer.FromHfTokenizerJson(Path.Combine(dir, "tokenizer.json"));
        var b = ModelTokenizer.FromHfTokenizerJson(path);
        Assert.Equal(a.Encode("What colour is the bar for C?"), b.Encode("What colour is the bar for C?"));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("r50k_base")]
    [InlineData("cl100k_base")]
    [InlineData("o200k_base")]
    public void Tiktoken_encodings_round_trip_text_and_specials(string encoding)
    {
        var tok = ModelTokenizer.FromTiktoken(encoding);
        var text = "<|im_start|>user\n<image>\nHow many red circles? Ünïcode 日本<|im_end|>";
        var ids = tok.Encode(text);
        Assert.Equal(text, tok.Decode(ids));
        Assert.Equal(tok.SpecialId("<|im_start|>"), ids[0]);
        Assert.Contains(tok.ImageTokenId, ids);
        Assert.True(tok.SpecialId("<|im_start|>") >= tok.BaseVocabSize);
    }

    [Fact]
    public void Different_encodings_split_the_same_text_differently()
    {
        var text = "The quick brown fox counts 12345 unbelievably long tokens";
        Assert.NotEqual(ModelTokenizer.FromTiktoken("gpt2").Encode(text), ModelTokenizer.FromTiktoken("o200k_base").Encode(text));
    }

    [Fact]
    public void Compact_vocabulary_is_lossless_on_its_corpus_and_visible_outside_it()
    {
        string[] corpus = ["What colour is the circle? red", "How many squares? 3"];
        var tok = ModelTokenizer.BuildCompact("o200k_base", corpus);
        var full = ModelTokenizer.FromTiktoken("o200k_base");
        foreach (var text in corpus)
        {
            var (ids, unknown) = tok.EncodeWithReport(text);
            Assert.Equal(0, unknown);
            Assert.Equal(text, tok.Decode(ids));
            Assert.Equal(full.Encode(text), ids.Select(i => tok.BaseId(i)!.Value)); // same split as the base
        }
        Assert.True(tok.VocabSize < 40);
        var (outIds, outUnknown) = tok.EncodeWithReport("zebra crossing");
        Assert.True(outUnknown > 0);
        Assert.Contains(tok.UnknownId!.Value, outIds);
        Assert.Contains("<unk>", tok.Decode(outIds));
    }

    [Fact]
    public void Compact_tokenizer_saves_and_loads()
    {
        var tok = ModelTokenizer.BuildCompact("gpt2", ["a b c red blue"], ChatTemplate.Llama3);
        var dir = TestSupport.TempDir();
        tok.Save(dir);
        var back = ModelTokenizer.Load(dir);
        Assert.Equal(tok.VocabSize, back.VocabSize);
        Assert.Equal(ChatTemplate.Llama3, back.Template);
        Assert.Equal(tok.Encode("<|start_header_id|>red blue"), back.Encode("<|start_header_id|>red blue"));
    }

    [Fact]
    public void Byte_level_tokenizer_gives_one_token_per_character_and_survives_a_save_round_trip()
    {
        var tok = ModelTokenizer.ByteLevel(ChatTemplate.ChatML);
        const string text = "I have 123 apples";
        Assert.Equal(text.Select(c => (int)c).ToArray(), tok.Encode(text)); // ASCII bytes are their own ids
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
        Assert.Equal("héllo ✓", tok.Decode(tok.Encode("héllo ✓")));     // multi-byte characters are several byte tokens
        var dir = TestSupport.TempDir();
        tok.Save(dir);
        var back = ModelTokenizer.Load(dir);
        Assert.Equal(tok.Encode("<|im_start|>user\nI have 123 apples<|im_end|>"), back.Encode("<|im_start|>user\nI have 123 apples<|im_end|>"));
        Assert.Null(tok.VocabularyDifference(back));
        Assert.NotNull(tok.VocabularyDifference(ModelTokenizer.FromTiktoken("gpt2")));
        // its boundaries differ from a merged BPE's inside every word: gpt2 keeps " apples" whole
        var gpt2 = ModelTokenizer.FromTiktoken("gpt2");
        Assert.True(GenRecal.Evaluation.PairReport.Boundaries(gpt2, text).Count < GenRecal.Evaluation.PairReport.Boundaries(tok, text).Count / 2);
    }

    [Theory]
    [InlineData("tiktoken")]
    [InlineData("hf")]
    public void A_megabyte_without_spaces_tokenizes_in_linear_time_and_ordinary_text_is_unchanged(string kind)
    {
        var tok = kind == "hf"
            ? ModelTokenizer.FromHfTokenizerJson(Path.Combine(TestSupport.Fixture("hf", "tiny-bpe-tokenizer"), "tokenizer.json"))
            : ModelTokenizer.FromTiktoken("o200k_base");
        var ordinary = "The quick brown fox jumps over the lazy dog, 12345 times!  Twice.";
        // the cut changes nothing for text without long runs: the ids of the unwrapped base tokenizer (the hf kind's
        // ordinary text is pinned to HuggingFace's own ids by HF_tokenizer_json_encodes_like_huggingface_tokenizers)
        if (kind == "tiktoken")
            Assert.Equal(Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt-4o").EncodeToIds(ordinary), tok.EncodeBaseText(ordinary));
        // pieces of a cut run are whole runs of at most MaxWordChars: decoding gives the text back
        var run = string.Concat(Enumerable.Repeat("ab", ModelTokenizer.MaxWordChars * 3));
        Assert.Equal(run, tok.DecodeBase(tok.EncodeBaseText(run)));
        foreach (var text in new[] { new string('a', 1 << 20), new string(' ', 1 << 20), string.Concat(Enumerable.Repeat("7x", 1 << 19)) })
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var ids = tok.EncodeBaseText(text);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{text.Length} characters took {clock.Elapsed}");
            Assert.NotEmpty(ids);
        }
    }
}
