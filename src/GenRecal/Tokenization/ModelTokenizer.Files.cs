using System.Text.Json.Nodes;
using GenRecal.Tensors;
using GenRecal.Tokenization.Hf;
using Microsoft.ML.Tokenizers;

namespace GenRecal.Tokenization;

/// <summary>
/// Tokenizer files. Saving writes the project's genrecal_tokenizer.json, HF's tokenizer_config.json (HF's schema:
/// tokenizer_class, added_tokens_decoder with flags, bos/eos/pad tokens, the Jinja chat_template when one was read)
/// and the base's own file. Loading takes, in this order: genrecal_tokenizer.json (+ its base file); the same data
/// in the tokenizer_config.json of directories saved before the split (tokenizer_class "GenRecalTokenizer");
/// then plain HF files as AutoTokenizer would: tokenizer.json (the fast path wins), else vocab.json + merges.txt
/// read as the slow class tokenizer_config.json names, else a SentencePiece tokenizer.model.
/// </summary>
public sealed partial class ModelTokenizer
{
    /// <summary>tokenizer_class of the tokenizer_config.json files that held GenRecal's own data before genrecal_tokenizer.json.</summary>
    const string LegacyClass = "GenRecalTokenizer";
    const string LegacyVocabMapKey = "compact_vocab";

    /// <summary>SentencePiece tokenizer classes read from tokenizer.model (LLaMA-2's and InternLM2's, both plain SentencePiece).</summary>
    public static readonly string[] SentencePieceClasses = ["LlamaTokenizer", "LlamaTokenizerFast", "InternLM2Tokenizer", "InternLM2TokenizerFast"];

    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var specials = new JsonObject();
        foreach (var (k, v) in specialIds.OrderBy(kv => kv.Value)) specials[k] = v;
        var own = new JsonObject
        {
            ["base"] = BaseName,
            ["vocab_size"] = VocabSize,
            ["special_tokens"] = specials,
            ["chat_template"] = Template.ToJson(),
        };
        if (compactToBase is not null) own["compact_base_ids"] = new JsonArray(compactToBase.Select(i => (JsonNode)i).ToArray());
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFileName), own.ToJsonString(new() { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(dir, HfConfigFileName), HfConfig().ToJsonString(new() { WriteIndented = true }));
        if (HfJson is not null) AtomicFile.WriteAllText(Path.Combine(dir, HfTokenizerFileName), HfJson);
        if (sentencePieceModel is not null) AtomicFile.Write(Path.Combine(dir, SentencePieceFileName), s => s.Write(sentencePieceModel));
    }

    /// <summary>tokenizer_config.json in HF's schema. A tiktoken base has no HF class, so none is named for it.</summary>
    JsonObject HfConfig()
    {
        var decoder = new JsonObject();
        var flags = hf?.AddedTokens.ToDictionary(a => a.Id) ?? [];
        foreach (var (content, id) in specialIds.OrderBy(kv => kv.Value))
        {
            var a = flags.GetValueOrDefault(id) ?? new HfAddedToken(id, content, Special: true, Normalized: false);
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = a.Content, ["lstrip"] = a.Lstrip, ["normalized"] = a.Normalized, ["rstrip"] = a.Rstrip,
                ["single_word"] = a.SingleWord, ["special"] = a.Special,
            };
        }
        var json = new JsonObject();
        if (HfJson is not null) json["tokenizer_class"] = "PreTrainedTokenizerFast";
        else if (sentencePieceModel is not null) json["tokenizer_class"] = "LlamaTokenizer";
        json["added_tokens_decoder"] = decoder;
        if (BosToken is { } bos) json["bos_token"] = bos;
        if (EosToken is { } eos) json["eos_token"] = eos;
        if (PadToken is { } pad) json["pad_token"] = pad;
        if (HfChatTemplate is { } chat) json["chat_template"] = chat;
        json["clean_up_tokenization_spaces"] = false;
        return json;
    }

    /// <summary>Loads from a model directory: GenRecal's own file, or plain HF tokenizer files.</summary>
    public static ModelTokenizer Load(string dir)
    {
        try
        {
            return LoadFiles(dir);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            // JsonNode.GetValue on a value of the wrong type (a number where a string belongs, ...)
            throw new InvalidDataException($"{dir}: tokenizer files hold a value of the wrong type ({e.Message}); see {ConfigFileName}, {HfConfigFileName}, {HfTokenizerFileName}");
        }
    }

    static ModelTokenizer LoadFiles(string dir)
    {
        string ownPath = Path.Combine(dir, ConfigFileName), hfConfigPath = Path.Combine(dir, HfConfigFileName);
        JsonObject? hfConfig = File.Exists(hfConfigPath) ? ParseObject(hfConfigPath) : null;
        if (File.Exists(ownPath)) return LoadOwn(dir, ownPath, ParseObject(ownPath), hfConfig is null ? null : Names(hfConfig, hfConfigPath));
        if (hfConfig?["tokenizer_class"] is JsonValue c && c.TryGetValue<string>(out var cls) && cls == LegacyClass)
            return LoadOwn(dir, hfConfigPath, hfConfig, null);
        var names = hfConfig is null ? new HfTokenNames(null, null, null, null) : Names(hfConfig, hfConfigPath);
        var hfPath = Path.Combine(dir, HfTokenizerFileName);
        if (File.Exists(hfPath)) return FromHfJson(ParseObject(hfPath), hfPath, File.ReadAllText(hfPath), null, names);
        if (SlowTokenizerFiles.Present(dir))
        {
            var json = SlowTokenizerFiles.ToTokenizerJson(dir, hfConfig, hfConfigPath);
            var text = json.ToJsonString(new() { WriteIndented = true });
            return FromHfJson(json, $"{Path.Combine(dir, SlowTokenizerFiles.VocabFileName)} + {SlowTokenizerFiles.MergesFileName}", text, null, names);
        }
        var spPath = Path.Combine(dir, SentencePieceFileName);
        if (File.Exists(spPath))
        {
            if (hfConfig?["tokenizer_class"] is JsonValue sc && sc.TryGetValue<string>(out var spClass) && !SentencePieceClasses.Contains(spClass))
                throw new InvalidDataException($"{hfConfigPath}: tokenizer_class '{spClass}' is not supported for {SentencePieceFileName} (supported: {string.Join(", ", SentencePieceClasses)})");
            // added tokens (InternLM2's chat tokens, InternVL's image tokens) are split off before SentencePiece sees the text
            return FromSentencePiece(spPath, null, names, SentencePieceAdded(dir));
        }
        throw new FileNotFoundException($"{dir}: no tokenizer found: expected {ConfigFileName} (GenRecal), or HuggingFace's {HfTokenizerFileName}, " +
            $"{SlowTokenizerFiles.VocabFileName} + {SlowTokenizerFiles.MergesFileName}, or {SentencePieceFileName}");
    }

    /// <summary>eos/bos/pad token strings and the Jinja chat_template (a string, or the "default" entry of a list) of a tokenizer_config.json.</summary>
    static HfTokenNames Names(JsonObject config, string path)
    {
        string? chat = config["chat_template"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray list => list.OfType<JsonObject>().Where(o => SlowTokenizerFiles.TokenString(o["name"]) == "default")
                .Select(o => o["template"] is JsonValue t && t.TryGetValue<string>(out var s) ? s : null).FirstOrDefault(),
            JsonObject => null, // the project's ChatTemplate record in directories saved before genrecal_tokenizer.json
            var other => throw new InvalidDataException($"{path}: chat_template must be a string or a list of {{name, template}}, found {Models.ConfigJson.Show(other)}"),
        };
        return new HfTokenNames(SlowTokenizerFiles.TokenString(config["eos_token"]), SlowTokenizerFiles.TokenString(config["bos_token"]),
            SlowTokenizerFiles.TokenString(config["pad_token"]), chat);
    }

    /// <summary>A SentencePiece directory's added tokens (tokenizer_config.json's added_tokens_decoder, added_tokens.json).</summary>
    static Dictionary<string, int> SentencePieceAdded(string dir)
    {
        var configPath = Path.Combine(dir, HfConfigFileName);
        var config = File.Exists(configPath) ? ParseObject(configPath) : null;
        return SlowTokenizerFiles.AddedTokens(dir, config, configPath, []).ToDictionary(a => (string)a!["content"]!, a => (int)a!["id"]!);
    }

    static ModelTokenizer FromSentencePiece(string path, ChatTemplate? template, HfTokenNames? names, IReadOnlyDictionary<string, int>? added = null)
    {
        var bytes = File.ReadAllBytes(path);
        SentencePieceTokenizer sp;
        try
        {
            sp = LlamaTokenizer.Create(new MemoryStream(bytes), addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not InvalidDataException and not IOException)
        {
            throw new InvalidDataException($"{path}: not a usable SentencePiece model ({e.GetType().Name}: {e.Message})");
        }
        var specials = new Dictionary<string, int>
        {
            [sp.UnknownToken] = sp.UnknownId, [sp.BeginningOfSentenceToken] = sp.BeginningOfSentenceId, [sp.EndOfSentenceToken] = sp.EndOfSentenceId,
        };
        foreach (var (content, id) in added ?? new Dictionary<string, int>()) specials[content] = id;
        return new ModelTokenizer(SentencePieceFileName, sp, null, sp.Vocabulary.Count, null, specials, template ?? ChatTemplate.ChatML, null, bytes, names);
    }

    static string? SentencePieceTokenOf(SentencePieceTokenizer sp, int id) => sp.Vocabulary.FirstOrDefault(kv => kv.Value == id).Key;

    /// <summary>GenRecal's own file: base, special ids, the ChatTemplate record, compact ids (inline, or vocab_map.json in old directories).</summary>
    static ModelTokenizer LoadOwn(string dir, string path, JsonObject own, HfTokenNames? names)
    {
        string baseName = own["base"]?.GetValue<string>() ?? throw new InvalidDataException($"{path}: missing key 'base'");
        var template = ChatTemplate.FromJson(own["chat_template"] as JsonObject);
        var specials = (own["special_tokens"] as JsonObject ?? throw new InvalidDataException($"{path}: missing key 'special_tokens'"))
            .ToDictionary(kv => kv.Key, kv => kv.Value is JsonValue v && v.TryGetValue<int>(out var id) ? id
                : throw new InvalidDataException($"{path}: special_tokens['{kv.Key}'] must be an integer id, found {Models.ConfigJson.Show(kv.Value)}"));
        ModelTokenizer plain = baseName switch
        {
            HfTokenizerFileName => FromHfJson(ParseObject(Path.Combine(dir, HfTokenizerFileName)), Path.Combine(dir, HfTokenizerFileName),
                File.ReadAllText(Path.Combine(dir, HfTokenizerFileName)), template, names),
            SentencePieceFileName => FromSentencePiece(Path.Combine(dir, SentencePieceFileName), template, names, SentencePieceAdded(dir)),
            _ => new ModelTokenizer(baseName, CreateTiktoken(baseName, path), null, 0, null, specials, template, null, null, names),
        };
        int[]? map = null;
        if (own["compact_base_ids"] is { } ids)
            map = (ids as JsonArray ?? throw new InvalidDataException($"{path}: compact_base_ids must be an array")).Select(n => n!.GetValue<int>()).ToArray();
        else if (own[LegacyVocabMapKey]?.GetValue<string>() is { } mapFile)
        {
            var mapPath = Path.Combine(dir, mapFile);
            map = (ParseObject(mapPath)["base_ids"] as JsonArray ?? throw new InvalidDataException($"{mapPath}: missing key 'base_ids'"))
                .Select(n => n!.GetValue<int>()).ToArray();
        }
        int baseSize = plain.mlTokenizer is TiktokenTokenizer t ? TiktokenVocabSize(t) : plain.BaseVocabSize;
        // a special id inside the ordinary vocabulary would make two different texts encode to the same id,
        // unless the base gives that id the same string (HF's added tokens, SentencePiece's <s>) or the HF files themselves
        // relabel that piece (InternLM2's [UNUSED_TOKEN_146] is its <|im_start|>, as its tokenizer_config.json says)
        int ordinary = map?.Length ?? baseSize;
        bool Declared(KeyValuePair<string, int> kv) => plain.SpecialTokens.TryGetValue(kv.Key, out var id) && id == kv.Value;
        var clash = specials.Where(kv => kv.Value < 0 || kv.Value < ordinary && (map is not null || plain.BaseTokenString(kv.Value) != kv.Key && !Declared(kv)))
            .Select(kv => $"'{kv.Key}' = {kv.Value}")
            .Concat(specials.GroupBy(kv => kv.Value).Where(g => g.Count() > 1).Select(g => $"{string.Join(" and ", g.Select(kv => $"'{kv.Key}'"))} share id {g.Key}")).ToList();
        if (clash.Count > 0)
            throw new InvalidDataException($"{path}: special token ids must be distinct and at least {ordinary} (the ordinary vocabulary's size), or a base token's own id: {string.Join("; ", clash)}");
        if (plain.hf is not null || plain.mlTokenizer is SentencePieceTokenizer)
        {
            var mine = specials.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
            var theirs = plain.specialIds.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
            if (!mine.SequenceEqual(theirs))
                throw new InvalidDataException($"{path}: special_tokens differ from the special tokens of {baseName} ({string.Join(", ", theirs)})");
        }
        var tok = new ModelTokenizer(baseName, plain.mlTokenizer, plain.hf, baseSize, map, specials, template, plain.HfJson, plain.sentencePieceModel, names)
        {
            TemplateSaved = true,
        };
        int declared = own["vocab_size"]?.GetValue<int>() ?? tok.VocabSize;
        if (declared != tok.VocabSize)
            throw new InvalidDataException($"{path}: vocab_size {declared} does not match the tokenizer files ({tok.VocabSize} ids)");
        return tok;
    }
}
