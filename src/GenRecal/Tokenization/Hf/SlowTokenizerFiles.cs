using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// HF's slow byte-level BPE files (vocab.json + merges.txt, as InternVL2_5-1B ships them) turned into the
/// tokenizer.json that transformers' converter makes for the slow class tokenizer_config.json names, so they run
/// through the same pipeline: Qwen2Tokenizer is NFC, Qwen2's split regex, byte level without a prefix space;
/// GPT2Tokenizer is GPT-2's byte-level regex with the config's add_prefix_space. Another class is refused by name.
/// Added tokens come from added_tokens_decoder (with their flags), then added_tokens.json.
/// </summary>
internal static class SlowTokenizerFiles
{
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";
    public const string AddedTokensFileName = "added_tokens.json";
    public const string SpecialTokensMapFileName = "special_tokens_map.json";

    /// <summary>Qwen2's pre-tokenization pattern (transformers' Qwen2Tokenizer PRETOKENIZE_REGEX).</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly string[] Classes = ["Qwen2Tokenizer", "Qwen2TokenizerFast", "GPT2Tokenizer", "GPT2TokenizerFast"];

    public static bool Present(string dir) => File.Exists(Path.Combine(dir, VocabFileName)) && File.Exists(Path.Combine(dir, MergesFileName));

    /// <summary>The equivalent tokenizer.json of the directory's slow files; <paramref name="config"/> is its tokenizer_config.json.</summary>
    public static JsonObject ToTokenizerJson(string dir, JsonObject? config, string configPath)
    {
        var cls = config?["tokenizer_class"] is JsonValue v && v.TryGetValue<string>(out var c) ? c
            : throw new InvalidDataException($"{configPath}: needs a string 'tokenizer_class' to read {VocabFileName} + {MergesFileName} (supported: {string.Join(", ", Classes)})");
        bool addPrefixSpace = config["add_prefix_space"] is JsonValue p && p.TryGetValue<bool>(out var b) && b;
        JsonNode? normalizer;
        JsonNode preTokenizer;
        switch (cls)
        {
            case "Qwen2Tokenizer" or "Qwen2TokenizerFast":
                normalizer = new JsonObject { ["type"] = "NFC" };
                preTokenizer = new JsonObject
                {
                    ["type"] = "Sequence",
                    ["pretokenizers"] = new JsonArray(
                        new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Qwen2Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                        new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = addPrefixSpace, ["trim_offsets"] = false, ["use_regex"] = false }),
                };
                break;
            case "GPT2Tokenizer" or "GPT2TokenizerFast":
                normalizer = null;
                preTokenizer = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = addPrefixSpace, ["trim_offsets"] = true, ["use_regex"] = true };
                break;
            default:
                throw new InvalidDataException($"{configPath}: tokenizer_class '{cls}' is not supported for {VocabFileName} + {MergesFileName} (supported: {string.Join(", ", Classes)})");
        }
        var vocabPath = Path.Combine(dir, VocabFileName);
        var vocab = Models.ConfigJson.Parse(vocabPath).Json;
        var mergesPath = Path.Combine(dir, MergesFileName);
        var merges = new JsonArray();
        int lineNo = 0;
        foreach (var raw in File.ReadLines(mergesPath))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || lineNo == 1 && line.StartsWith("#version:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2) throw new InvalidDataException($"{mergesPath}: line {lineNo} must be two tokens separated by a space, found '{line}'");
            merges.Add(new JsonArray(parts[0], parts[1]));
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = AddedTokens(dir, config, configPath, vocab),
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab.DeepClone(), ["merges"] = merges },
        };
    }

    internal static JsonArray AddedTokens(string dir, JsonObject? config, string configPath, JsonObject vocab)
    {
        var added = new List<HfAddedToken>();
        if (config?["added_tokens_decoder"] is { } decoder)
        {
            var obj = decoder as JsonObject ?? throw new InvalidDataException($"{configPath}: added_tokens_decoder must be an object");
            foreach (var (key, value) in obj)
            {
                if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
                    throw new InvalidDataException($"{configPath}: added_tokens_decoder key '{key}' must be a token id");
                var a = value as JsonObject ?? throw new InvalidDataException($"{configPath}: added_tokens_decoder['{key}'] must be an object");
                var content = a["content"] is JsonValue cv && cv.TryGetValue<string>(out var cs) ? cs
                    : throw new InvalidDataException($"{configPath}: added_tokens_decoder['{key}'] needs a string 'content'");
                added.Add(HfTokenizer.ReadFlags(a, id, content, $"{configPath}: added_tokens_decoder['{key}']"));
            }
        }
        var addedPath = Path.Combine(dir, AddedTokensFileName);
        if (File.Exists(addedPath))
        {
            var specials = SpecialTokenStrings(dir, config);
            foreach (var (content, idNode) in Models.ConfigJson.Parse(addedPath).Json)
            {
                int id = idNode is JsonValue iv && iv.TryGetValue<int>(out var n) && n >= 0 ? n
                    : throw new InvalidDataException($"{addedPath}: '{content}' must map to a non-negative integer id, found {Models.ConfigJson.Show(idNode)}");
                if (added.Any(a => a.Content == content)) continue;
                bool special = specials.Contains(content);
                added.Add(new HfAddedToken(id, content, special, Normalized: !special));
            }
        }
        return new JsonArray(added.OrderBy(a => a.Id).Select(a => (JsonNode)new JsonObject
        {
            ["id"] = a.Id, ["content"] = a.Content, ["single_word"] = a.SingleWord, ["lstrip"] = a.Lstrip,
            ["rstrip"] = a.Rstrip, ["normalized"] = a.Normalized, ["special"] = a.Special,
        }).ToArray());
    }

    /// <summary>Strings special_tokens_map.json (or the config) names as special: bos/eos/unk/pad and additional_special_tokens.</summary>
    static HashSet<string> SpecialTokenStrings(string dir, JsonObject? config)
    {
        var set = new HashSet<string>();
        var mapPath = Path.Combine(dir, SpecialTokensMapFileName);
        var sources = new List<JsonObject>();
        if (config is not null) sources.Add(config);
        if (File.Exists(mapPath)) sources.Add(Models.ConfigJson.Parse(mapPath).Json);
        foreach (var src in sources)
        {
            foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
                if (TokenString(src[key]) is { } s) set.Add(s);
            if (src["additional_special_tokens"] is JsonArray extra)
                foreach (var e in extra) if (TokenString(e) is { } s) set.Add(s);
        }
        return set;
    }

    /// <summary>A token named in HF's config files: a string or an AddedToken object with 'content'.</summary>
    public static string? TokenString(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
        _ => null,
    };
}
