using System.Text.Json.Nodes;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Tokenization;

/// <summary>
/// Tokenizer files in the layouts real models ship, against ids, tokens and decodes recorded by HF's tokenizers.js
/// (tools/tokenizer-fixtures): nothing expected here is computed by GenRecal's own code.
/// </summary>
public class HfTokenizerFilesTests
{
    public static TheoryData<string> Layouts => new() { "qwen2", "qwen2-slow", "llama3", "llama2-fast", "digits-metaspace", "metaspace-first" };

    static string Dir(string name) => TestSupport.Fixture("tokenizers", name);

    static IEnumerable<(string Text, int[] Ids, string Decoded, string DecodedSkip)> Cases(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(name), "expected.json")))!["cases"]!.AsArray().Select(c => (
            c!["text"]!.GetValue<string>(), c["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray(),
            c["decoded"]!.GetValue<string>(), c["decoded_skip_special"]!.GetValue<string>()));

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Ids_and_decodes_equal_the_reference(string layout)
    {
        var tok = ModelTokenizer.Load(Dir(layout));
        var failures = new List<string>();
        foreach (var (text, ids, decoded, decodedSkip) in Cases(layout))
        {
            var mine = tok.Encode(text);
            if (!mine.SequenceEqual(ids)) failures.Add($"encode {Show(text)}: expected [{string.Join(",", ids)}], got [{string.Join(",", mine)}]");
            if (tok.Decode(ids) != decoded) failures.Add($"decode {Show(text)}: expected {Show(decoded)}, got {Show(tok.Decode(ids))}");
            if (tok.Decode(ids, skipSpecial: true) != decodedSkip) failures.Add($"decode skipping specials {Show(text)}: expected {Show(decodedSkip)}, got {Show(tok.Decode(ids, skipSpecial: true))}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    [Fact]
    public void Qwen2_gives_one_id_per_digit()
    {
        var tok = ModelTokenizer.Load(Dir("qwen2"));
        var (_, ids, _, _) = Cases("qwen2").Single(c => c.Text == "I have 123 apples");
        Assert.Equal(ids, tok.Encode("I have 123 apples"));
        Assert.Equal(["1", "2", "3"], tok.Encode("123").Select(tok.TokenText));
        // the vocabulary has digit merges: a GPT-2 style split would use them
        var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("qwen2"), "tokenizer.json")))!["model"]!["vocab"]!.AsObject();
        Assert.Contains(vocab, kv => kv.Key.Length > 1 && kv.Key.All(char.IsDigit));
    }

    [Fact]
    public void Plain_hf_files_expose_the_config_strings_and_keep_the_chatml_template()
    {
        var tok = ModelTokenizer.Load(Dir("qwen2"));
        Assert.Equal("<|im_end|>", tok.EosToken);
        Assert.Equal("<|endoftext|>", tok.PadToken);
        Assert.Null(tok.BosToken);
        Assert.StartsWith("{% for message in messages %}", tok.HfChatTemplate);
        Assert.Equal(ChatTemplate.ChatML, tok.Template);
        var llama = ModelTokenizer.Load(Dir("llama3"));
        Assert.Equal("<|begin_of_text|>", llama.BosToken);
        Assert.Null(llama.HfChatTemplate);
    }

    [Fact]
    public void Slow_files_and_tokenizer_json_give_one_vocabulary()
    {
        var fast = ModelTokenizer.Load(Dir("qwen2"));
        var slow = ModelTokenizer.Load(Dir("qwen2-slow"));
        Assert.Equal(fast.VocabSize, slow.VocabSize);
        Assert.Equal(fast.SpecialTokens.OrderBy(kv => kv.Value), slow.SpecialTokens.OrderBy(kv => kv.Value));
    }

    [Fact]
    public void Tokenizer_json_wins_over_slow_files_in_one_directory()
    {
        var dir = TestSupport.TempDir();
        foreach (var f in Directory.GetFiles(Dir("qwen2-slow"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("llama3"), "tokenizer.json")))!;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
        var tok = ModelTokenizer.Load(dir);
        Assert.Equal(ModelTokenizer.Load(Dir("llama3")).Encode("1,000,000"), tok.Encode("1,000,000"));
    }

    [Fact]
    public void An_unknown_slow_tokenizer_class_is_refused_by_name()
    {
        var dir = TestSupport.TempDir();
        foreach (var f in Directory.GetFiles(Dir("qwen2-slow"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var config = Path.Combine(dir, "tokenizer_config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"Qwen2Tokenizer\"", "\"BertTokenizer\""));
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(dir));
        Assert.Contains("'BertTokenizer'", e.Message);
        Assert.Contains(config, e.Message);
    }

    [Theory]
    [InlineData("pre_tokenizer", """{"type": "UnicodeScripts"}""", "pre-tokenizer type 'UnicodeScripts'")]
    [InlineData("normalizer", """{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "BertNormalizer"}]}""", "normalizer type 'BertNormalizer'")]
    [InlineData("normalizer", """{"type": "Precompiled", "precompiled_charsmap": ""}""", "normalizer type 'Precompiled'")]
    [InlineData("decoder", """{"type": "WordPiece", "prefix": "##"}""", "decoder type 'WordPiece'")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Isolated", "invert": false, "future_option": 1}""", "'future_option'")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}""", "behavior 'Sideways'")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "[[:alpha:]]"}, "behavior": "Isolated"}""", "[[:alpha:]]")]
    [InlineData("truncation", """{"max_length": 8}""", "truncation")]
    public void An_unknown_component_or_option_is_refused_naming_the_file(string key, string value, string words)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("qwen2"), "tokenizer.json")))!.AsObject();
        json[key] = JsonNode.Parse(value);
        var path = Path.Combine(TestSupport.TempDir(), "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.FromHfTokenizerJson(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(words, e.Message);
    }

    [Fact]
    public void An_unknown_model_type_is_refused()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("qwen2"), "tokenizer.json")))!.AsObject();
        json["model"]!["type"] = "WordPiece";
        var path = Path.Combine(TestSupport.TempDir(), "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        Assert.Contains("model type 'WordPiece'", Assert.Throws<InvalidDataException>(() => ModelTokenizer.FromHfTokenizerJson(path)).Message);
    }

    [Fact]
    public void Hf_files_save_as_the_project_file_plus_hf_schema_and_load_back_the_same()
    {
        var tok = ModelTokenizer.Load(Dir("qwen2"));
        var dir = TestSupport.TempDir();
        tok.Save(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ModelTokenizer.HfConfigFileName)))!.AsObject();
        Assert.Equal("PreTrainedTokenizerFast", config["tokenizer_class"]!.GetValue<string>());
        var tool = config["added_tokens_decoder"]!.AsObject().Single(kv => kv.Value!["content"]!.GetValue<string>() == "<tool>").Value!;
        Assert.True(tool["lstrip"]!.GetValue<bool>());
        Assert.False(tool["special"]!.GetValue<bool>());
        Assert.Equal("<|im_end|>", config["eos_token"]!.GetValue<string>());
        Assert.Equal(tok.HfChatTemplate, config["chat_template"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir, ModelTokenizer.ConfigFileName)));
        var back = ModelTokenizer.Load(dir);
        Assert.Null(tok.VocabularyDifference(back));
        Assert.Equal(tok.HfChatTemplate, back.HfChatTemplate);
        foreach (var (text, ids, _, _) in Cases("qwen2")) Assert.Equal(ids, back.Encode(text));
    }

    [Fact]
    public void A_directory_saved_before_genrecal_tokenizer_json_still_loads()
    {
        var tok = ModelTokenizer.BuildCompact("gpt2", ["a b c red blue"], ChatTemplate.Llama3);
        var dir = TestSupport.TempDir();
        tok.Save(dir);
        // the old layout: GenRecal's data in tokenizer_config.json, compact ids in vocab_map.json
        var own = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ModelTokenizer.ConfigFileName)))!.AsObject();
        var ids = own["compact_base_ids"]!.DeepClone();
        own.Remove("compact_base_ids");
        own["tokenizer_class"] = "GenRecalTokenizer";
        own["compact_vocab"] = "vocab_map.json";
        File.WriteAllText(Path.Combine(dir, "vocab_map.json"), new JsonObject { ["base"] = "gpt2", ["base_ids"] = ids }.ToJsonString());
        File.WriteAllText(Path.Combine(dir, ModelTokenizer.HfConfigFileName), own.ToJsonString());
        File.Delete(Path.Combine(dir, ModelTokenizer.ConfigFileName));
        var back = ModelTokenizer.Load(dir);
        Assert.Null(tok.VocabularyDifference(back));
        Assert.Equal(ChatTemplate.Llama3, back.Template);
    }

    [Fact]
    public void A_single_word_added_token_never_matches_inside_a_word()
    {
        // HF's AddedToken docs: with single_word "ing" matches in "ing tokens" but not in "tokenizing"
        var tok = ModelTokenizer.Load(Dir("qwen2"));
        int w = tok.SpecialId("<w>");
        Assert.Contains(w, tok.Encode("a <w> b"));
        Assert.DoesNotContain(w, tok.Encode("a<w>b"));
        Assert.DoesNotContain(w, tok.Encode("x <w>b"));
        Assert.Equal("a<w>b", tok.Decode(tok.Encode("a<w>b")));
    }

    [Fact]
    public void A_sentencepiece_model_encodes_and_decodes_as_sentencepiece_does()
    {
        var dir = Dir("sentencepiece");
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        var tok = ModelTokenizer.Load(dir);
        Assert.Equal(expected["vocab_size"]!.GetValue<int>(), tok.BaseVocabSize);
        Assert.Equal(expected["bos_id"]!.GetValue<int>(), tok.SpecialId("<s>"));
        Assert.Equal(expected["eos_id"]!.GetValue<int>(), tok.SpecialId("</s>"));
        foreach (var c in expected["cases"]!.AsArray())
        {
            var text = c!["text"]!.GetValue<string>();
            var ids = c["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
            Assert.Equal(ids, tok.Encode(text)); // no BOS: sentencepiece's encode, HF's add_special_tokens=False
            Assert.Equal(c["decoded"]!.GetValue<string>(), tok.Decode(ids));
        }
        var saved = TestSupport.TempDir();
        tok.Save(saved);
        var back = ModelTokenizer.Load(saved);
        Assert.Null(tok.VocabularyDifference(back));
        Assert.Equal(tok.Encode("I have 123 apples</s>"), back.Encode("I have 123 apples</s>"));
    }

    [Fact]
    public void A_tokenizer_model_with_another_class_is_refused_by_name()
    {
        var dir = TestSupport.TempDir();
        File.Copy(Path.Combine(Dir("sentencepiece"), "tokenizer.model"), Path.Combine(dir, "tokenizer.model"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"tokenizer_class": "T5Tokenizer"}""");
        Assert.Contains("'T5Tokenizer'", Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(dir)).Message);
    }
}
