using System.Text.Json.Nodes;
using GenRecal.Tensors;
using Microsoft.ML.Tokenizers;

namespace GenRecal.Tokenization;

/// <summary>
/// A model's tokenizer: a real base tokenizer (a tiktoken encoding, or a HuggingFace byte-level BPE
/// tokenizer.json) plus special tokens, a chat template and, optionally, a compact vocabulary — the
/// subset of base ids a corpus uses, renumbered 0..n-1 in base order — so a demo model need not carry
/// 200k embedding rows. Text outside the compact vocabulary maps to &lt;unk&gt; and is counted, never hidden.
/// Files: tokenizer_config.json (+ vocab_map.json when compact, + tokenizer.json for a BPE base).
/// </summary>
public sealed partial class ModelTokenizer
{
    public const string ConfigFileName = "tokenizer_config.json";
    public const string VocabMapFileName = "vocab_map.json";
    public const string HfTokenizerFileName = "tokenizer.json";
    public const string UnknownToken = "<unk>";
    public static readonly string[] TiktokenEncodings = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"];

    readonly Tokenizer baseTokenizer;
    readonly int[]? compactToBase;
    readonly Dictionary<int, int>? baseToCompact;
    readonly Dictionary<string, int> specialIds;
    readonly Dictionary<int, string> specialById;
    readonly System.Text.RegularExpressions.Regex? specialSplitter;

    ModelTokenizer(string baseName, Tokenizer baseTokenizer, int baseVocabSize, int[]? compactToBase,
                   IReadOnlyDictionary<string, int> specials, ChatTemplate template, string? hfJson)
    {
        BaseName = baseName;
        this.baseTokenizer = baseTokenizer;
        BaseVocabSize = baseVocabSize;
        this.compactToBase = compactToBase;
        baseToCompact = compactToBase?.Select((b, i) => (b, i)).ToDictionary(p => p.b, p => p.i);
        specialIds = new Dictionary<string, int>(specials);
        specialById = specialIds.ToDictionary(kv => kv.Value, kv => kv.Key);
        Template = template;
        HfJson = hfJson;
        if (specialIds.Count > 0)
            specialSplitter = new(string.Join("|", specialIds.Keys.OrderByDescending(s => s.Length).Select(System.Text.RegularExpressions.Regex.Escape)));
        VocabSize = Math.Max((compactToBase?.Length ?? baseVocabSize), specialIds.Count == 0 ? 0 : specialIds.Values.Max() + 1);
    }

    /// <summary>"gpt2", "o200k_base", ... or "tokenizer.json".</summary>
    public string BaseName { get; }
    public int BaseVocabSize { get; }
    public int VocabSize { get; }
    public bool IsCompact => compactToBase is not null;
    public ChatTemplate Template { get; }
    public IReadOnlyDictionary<string, int> SpecialTokens => specialIds;
    internal string? HfJson { get; }

    public int EndOfTurnId => SpecialId(Template.EndOfTurn);
    public int ImageTokenId => SpecialId(Template.ImageContext);
    public int PadId => specialIds.TryGetValue("<|endoftext|>", out var id) ? id : EndOfTurnId;
    public int? UnknownId => specialIds.TryGetValue(UnknownToken, out var id) ? id : null;

    public int SpecialId(string token) => specialIds.TryGetValue(token, out var id) ? id
        : throw new InvalidDataException($"tokenizer has no special token '{token}' (has: {string.Join(", ", specialIds.Keys)})");

    // ---- creation -------------------------------------------------------------------------------

    /// <summary>A tiktoken encoding with the template's special tokens appended after the base ids.</summary>
    public static ModelTokenizer FromTiktoken(string encoding, ChatTemplate? template = null)
    {
        template ??= ChatTemplate.ChatML;
        var tok = CreateTiktoken(encoding, "(argument)");
        int baseSize = TiktokenVocabSize(tok);
        var specials = new Dictionary<string, int>();
        foreach (var s in template.SpecialTokens().Prepend("<|endoftext|>")) specials.TryAdd(s, baseSize + specials.Count);
        return new ModelTokenizer(encoding, tok, baseSize, null, specials, template, null);
    }

    /// <summary>
    /// Compact vocabulary over <paramref name="corpus"/>: every base id the corpus needs (in base order),
    /// then &lt;unk&gt;, &lt;|endoftext|&gt; and the template's special tokens.
    /// </summary>
    public static ModelTokenizer BuildCompact(string encoding, IEnumerable<string> corpus, ChatTemplate? template = null)
    {
        template ??= ChatTemplate.ChatML;
        var full = FromTiktoken(encoding, template);
        var used = new SortedSet<int>();
        foreach (var text in corpus)
            foreach (var id in full.EncodeBaseText(text)) used.Add(id);
        var map = used.ToArray();
        var specials = new Dictionary<string, int>();
        foreach (var s in template.SpecialTokens().Prepend("<|endoftext|>").Prepend(UnknownToken)) specials.TryAdd(s, map.Length + specials.Count);
        return new ModelTokenizer(encoding, full.baseTokenizer, full.BaseVocabSize, map, specials, template, null);
    }

    // ---- encoding -------------------------------------------------------------------------------

    /// <summary>Token ids of <paramref name="text"/>, special-token strings included; unknown pieces counted.</summary>
    public (int[] Ids, int Unknown) EncodeWithReport(string text)
    {
        var ids = new List<int>();
        int unknown = 0;
        int pos = 0;
        void Ordinary(string segment)
        {
            if (segment.Length == 0) return;
            foreach (var b in EncodeBaseText(segment))
            {
                if (baseToCompact is null) ids.Add(b);
                else if (baseToCompact.TryGetValue(b, out var c)) ids.Add(c);
                else { ids.Add(UnknownId!.Value); unknown++; }
            }
        }
        if (specialSplitter is not null)
            foreach (System.Text.RegularExpressions.Match m in specialSplitter.Matches(text))
            {
                Ordinary(text[pos..m.Index]);
                ids.Add(specialIds[m.Value]);
                pos = m.Index + m.Length;
            }
        Ordinary(text[pos..]);
        return (ids.ToArray(), unknown);
    }

    public int[] Encode(string text) => EncodeWithReport(text).Ids;

    /// <summary>
    /// Longest run of characters (all whitespace, or all not) the base tokenizer sees at once. BPE's time grows with
    /// the square of a pre-tokenized word's length (a 1 MB line without spaces took minutes), so longer runs are cut
    /// into pieces of this size and encoded one after another: linear time, and identical ids for any text without
    /// such a run (no natural word comes near it).
    /// </summary>
    public const int MaxWordChars = 256;

    /// <summary>Base-tokenizer ids for text with no special tokens in it.</summary>
    public IReadOnlyList<int> EncodeBaseText(string text)
    {
        var cuts = LongRunCuts(text);
        if (cuts.Count == 0) return baseTokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        var ids = new List<int>();
        int start = 0;
        foreach (var cut in cuts.Append(text.Length))
        {
            ids.AddRange(baseTokenizer.EncodeToIds(text[start..cut], considerPreTokenization: true, considerNormalization: true));
            start = cut;
        }
        return ids;
    }

    /// <summary>Positions that split every whitespace or non-whitespace run longer than <see cref="MaxWordChars"/>
    /// (never between the halves of a surrogate pair).</summary>
    static List<int> LongRunCuts(string text)
    {
        var cuts = new List<int>();
        int run = 0;
        for (int i = 0; i < text.Length; i++)
        {
            run = i > 0 && char.IsWhiteSpace(text[i]) == char.IsWhiteSpace(text[i - 1]) ? run + 1 : 1;
            if (run > MaxWordChars && !char.IsLowSurrogate(text[i]))
            {
                cuts.Add(i);
                run = 1;
            }
        }
        return cuts;
    }

    /// <summary>Text of base-tokenizer ids (no special tokens, no compact mapping).</summary>
    public string DecodeBase(IEnumerable<int> baseIds) => baseTokenizer.Decode(baseIds);

    /// <summary>Text of ids; special tokens are written out unless <paramref name="skipSpecial"/>.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = false)
    {
        var sb = new System.Text.StringBuilder();
        var run = new List<int>();
        void Flush()
        {
            if (run.Count == 0) return;
            sb.Append(baseTokenizer.Decode(run));
            run.Clear();
        }
        foreach (var id in ids)
        {
            if (specialById.TryGetValue(id, out var s))
            {
                Flush();
                if (!skipSpecial) sb.Append(s);
            }
            else if (compactToBase is not null)
            {
                if (id < 0 || id >= compactToBase.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary ({VocabSize})");
                run.Add(compactToBase[id]);
            }
            else run.Add(id);
        }
        Flush();
        return sb.ToString();
    }

    /// <summary>The string form of one token (for boundary and overlap statistics).</summary>
    public string TokenText(int id) => specialById.TryGetValue(id, out var s) ? s : Decode([id]);

    /// <summary>Base id of a model id (identity without a compact vocabulary); null for special tokens.</summary>
    public int? BaseId(int id) => specialById.ContainsKey(id) ? null : compactToBase is null ? id : compactToBase[id];

    /// <summary>
    /// Null when both tokenizers give every string the same id and every id the same string (same base
    /// vocabulary, same compact map, same special tokens); otherwise what differs. Token-level KD needs null.
    /// </summary>
    public string? VocabularyDifference(ModelTokenizer other)
    {
        if (VocabSize != other.VocabSize) return $"vocabulary sizes {VocabSize} and {other.VocabSize}";
        if (BaseName != other.BaseName || HfJson != other.HfJson) return $"base tokenizers '{BaseName}' and '{other.BaseName}'";
        if (!(compactToBase ?? []).SequenceEqual(other.compactToBase ?? [])) return "different compact vocabularies over the same base";
        var mine = specialIds.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
        var theirs = other.specialIds.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
        return mine.SequenceEqual(theirs) ? null : "different special tokens or special-token ids";
    }

    // ---- files ----------------------------------------------------------------------------------

    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var specials = new JsonObject();
        foreach (var (k, v) in specialIds.OrderBy(kv => kv.Value)) specials[k] = v;
        var json = new JsonObject
        {
            ["tokenizer_class"] = "GenRecalTokenizer",
            ["base"] = BaseName,
            ["vocab_size"] = VocabSize,
            ["special_tokens"] = specials,
            ["eos_token"] = Template.EndOfTurn,
            ["pad_token"] = specialById[PadId],
            ["chat_template"] = Template.ToJson(),
            ["compact_vocab"] = IsCompact ? VocabMapFileName : null,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFileName), json.ToJsonString(new() { WriteIndented = true }));
        if (compactToBase is not null)
            AtomicFile.WriteAllText(Path.Combine(dir, VocabMapFileName),
                new JsonObject { ["base"] = BaseName, ["base_ids"] = new JsonArray(compactToBase.Select(i => (JsonNode)i).ToArray()) }.ToJsonString());
        if (HfJson is not null) AtomicFile.WriteAllText(Path.Combine(dir, HfTokenizerFileName), HfJson);
    }

    /// <summary>Loads from a model directory: tokenizer_config.json (GenRecal) or a bare HF tokenizer.json.</summary>
    public static ModelTokenizer Load(string dir)
    {
        string configPath = Path.Combine(dir, ConfigFileName), hfPath = Path.Combine(dir, HfTokenizerFileName);
        try
        {
            return LoadFiles(dir, configPath, hfPath);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            // JsonNode.GetValue on a value of the wrong type (a number where a string belongs, ...)
            throw new InvalidDataException($"{dir}: tokenizer files hold a value of the wrong type ({e.Message}); see {ConfigFileName}, {VocabMapFileName}, {HfTokenizerFileName}");
        }
    }

    static ModelTokenizer LoadFiles(string dir, string configPath, string hfPath)
    {
        JsonObject? config = File.Exists(configPath) ? ParseObject(configPath) : null;
        if (config?["tokenizer_class"]?.GetValue<string>() != "GenRecalTokenizer")
        {
            if (File.Exists(hfPath)) return FromHfTokenizerJson(hfPath, ChatTemplate.FromJson(config?["chat_template"] as JsonObject));
            throw new FileNotFoundException($"{dir}: no tokenizer found: expected {ConfigFileName} (GenRecal) or {HfTokenizerFileName} (HuggingFace)");
        }
        string baseName = config["base"]?.GetValue<string>() ?? throw new InvalidDataException($"{configPath}: missing key 'base'");
        var template = ChatTemplate.FromJson(config["chat_template"] as JsonObject);
        var specials = (config["special_tokens"] as JsonObject ?? throw new InvalidDataException($"{configPath}: missing key 'special_tokens'"))
            .ToDictionary(kv => kv.Key, kv => kv.Value is JsonValue v && v.TryGetValue<int>(out var id) ? id
                : throw new InvalidDataException($"{configPath}: special_tokens['{kv.Key}'] must be an integer id, found {Models.ConfigJson.Show(kv.Value)}"));
        ModelTokenizer plain = baseName == HfTokenizerFileName
            ? FromHfTokenizerJson(hfPath, template)
            : new ModelTokenizer(baseName, CreateTiktoken(baseName, configPath), 0, null, specials, template, null);
        int[]? map = null;
        if (config["compact_vocab"]?.GetValue<string>() is { } mapFile)
        {
            var mapPath = Path.Combine(dir, mapFile);
            var mapJson = ParseObject(mapPath);
            map = (mapJson["base_ids"] as JsonArray ?? throw new InvalidDataException($"{mapPath}: missing key 'base_ids'"))
                .Select(n => n!.GetValue<int>()).ToArray();
        }
        int baseSize = plain.baseTokenizer is TiktokenTokenizer t ? TiktokenVocabSize(t) : plain.BaseVocabSize;
        // a special id inside the ordinary vocabulary would make two different texts encode to the same id
        int ordinary = map?.Length ?? baseSize;
        var clash = specials.Where(kv => kv.Value < ordinary || kv.Value < 0).Select(kv => $"'{kv.Key}' = {kv.Value}")
            .Concat(specials.GroupBy(kv => kv.Value).Where(g => g.Count() > 1).Select(g => $"{string.Join(" and ", g.Select(kv => $"'{kv.Key}'"))} share id {g.Key}")).ToList();
        if (clash.Count > 0)
            throw new InvalidDataException($"{configPath}: special token ids must be distinct and at least {ordinary} (the ordinary vocabulary's size): {string.Join("; ", clash)}");
        var tok = new ModelTokenizer(baseName, plain.baseTokenizer, baseSize, map, specials, template, plain.HfJson);
        int declared = config["vocab_size"]?.GetValue<int>() ?? tok.VocabSize;
        if (declared != tok.VocabSize)
            throw new InvalidDataException($"{configPath}: vocab_size {declared} does not match the tokenizer files ({tok.VocabSize} ids)");
        return tok;
    }

    /// <summary>A HuggingFace byte-level BPE tokenizer.json (vocab, merges as "a b" strings or [a, b] pairs, added tokens).</summary>
    public static ModelTokenizer FromHfTokenizerJson(string path, ChatTemplate? template = null) =>
        FromHfTokenizerJson(ParseObject(path), path, File.ReadAllText(path), template);

    static ModelTokenizer FromHfTokenizerJson(JsonObject json, string path, string text, ChatTemplate? template)
    {
        try
        {
            return ReadHfTokenizerJson(json, path, text, template);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException || e.GetType() == typeof(ArgumentException))
        {
            // wrong-typed JSON values, or merges the BPE builder refuses: name the file
            throw new InvalidDataException($"{path}: not a usable byte-level BPE tokenizer ({e.Message})");
        }
    }

    static ModelTokenizer ReadHfTokenizerJson(JsonObject json, string path, string text, ChatTemplate? template)
    {
        var model = json["model"] as JsonObject ?? throw new InvalidDataException($"{path}: missing 'model'");
        if (model["type"]?.GetValue<string>() is { } type && type != "BPE")
            throw new InvalidDataException($"{path}: model.type '{type}' is not supported (only byte-level BPE)");
        var vocab = model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: missing 'model.vocab'");
        var vocabById = new Dictionary<int, string>();
        foreach (var (token, idNode) in vocab)
            if (idNode is JsonValue v && v.TryGetValue<int>(out var id))
            {
                if (!vocabById.TryAdd(id, token)) throw new InvalidDataException($"{path}: model.vocab gives id {id} to both '{vocabById[id]}' and '{token}'");
            }
            else throw new InvalidDataException($"{path}: model.vocab['{token}'] must be an integer id, found {Models.ConfigJson.Show(idNode)}");
        var merges = model["merges"] as JsonArray ?? throw new InvalidDataException($"{path}: missing 'model.merges'");
        var mergeLines = merges.Select(m => m switch
        {
            JsonArray pair when pair.Count == 2 => $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}",
            JsonValue v => v.GetValue<string>(),
            _ => throw new InvalidDataException($"{path}: a merge must be \"a b\" or [\"a\", \"b\"], found {Models.ConfigJson.Show(m)}"),
        });
        // Byte-level BPE with the GPT-2 pre-tokenization regex, as HF's ByteLevel(use_regex=true) does.
        var bpe = BpeTokenizer.Create(new BpeOptions(vocab.Select(kv => new KeyValuePair<string, int>(kv.Key, kv.Value!.GetValue<int>())))
        {
            Merges = mergeLines.ToList(),
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Gpt2Pattern(), null),
        });
        var specials = new Dictionary<string, int>();
        if (json["added_tokens"] is JsonArray added)
            foreach (var a in added)
            {
                string? content = a?["content"] is JsonValue c && c.TryGetValue<string>(out var cs) ? cs : null;
                int? id = a?["id"] is JsonValue i && i.TryGetValue<int>(out var iv) ? iv : null;
                if (content is null || id is null) throw new InvalidDataException($"{path}: an added token needs a string 'content' and an integer 'id', found {Models.ConfigJson.Show(a)}");
                // HF lists some vocabulary entries as added tokens too (GPT-2's <|endoftext|>); an id that the vocabulary
                // gives to other text, or that another added token has, would make two texts one id
                if (vocabById.TryGetValue(id.Value, out var inVocab) && inVocab != content)
                    throw new InvalidDataException($"{path}: added token '{content}' has id {id}, which model.vocab gives to '{inVocab}'");
                if (specials.FirstOrDefault(kv => kv.Value == id && kv.Key != content).Key is { } other)
                    throw new InvalidDataException($"{path}: added tokens '{other}' and '{content}' share id {id}");
                specials[content] = id.Value;
            }
        template ??= ChatTemplate.ChatML;
        return new ModelTokenizer(HfTokenizerFileName, bpe, vocab.Count, null, specials, template, text);
    }

    /// <summary>Name of the byte-level base: one token per UTF-8 byte (a byte-level BPE with no merges).</summary>
    public const string BytesBase = "bytes";

    /// <summary>
    /// A byte-level tokenizer in HF's tokenizer.json form (GPT-2's byte-to-unicode alphabet, no merges): every
    /// character of ASCII text is its own token, so its token boundaries differ from any merged BPE's inside
    /// every word and number. Specials: &lt;unk&gt;, &lt;|endoftext|&gt;, then the template's, after the 256 bytes.
    /// </summary>
    public static ModelTokenizer ByteLevel(ChatTemplate? template = null)
    {
        template ??= ChatTemplate.ChatML;
        var vocab = new JsonObject();
        foreach (var (b, c) in ByteToUnicode()) vocab[c.ToString()] = b;
        var added = new JsonArray();
        foreach (var sp in template.SpecialTokens().Prepend("<|endoftext|>").Prepend(UnknownToken).Distinct())
            added.Add(new JsonObject { ["id"] = 256 + added.Count, ["content"] = sp, ["special"] = true });
        var json = new JsonObject
        {
            ["version"] = "1.0", ["added_tokens"] = added, ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        var text = json.ToJsonString(new() { WriteIndented = true });
        return FromHfTokenizerJson(JsonNode.Parse(text)!.AsObject(), "(byte-level tokenizer)", text, template);
    }

    /// <summary>A tokenizer for a new model: the byte-level one, or a compact vocabulary over a tiktoken encoding.</summary>
    public static ModelTokenizer Build(string baseName, IEnumerable<string> corpus, ChatTemplate template) =>
        baseName == BytesBase ? ByteLevel(template) : BuildCompact(baseName, corpus, template);

    /// <summary>GPT-2's reversible map from bytes to printable characters (the alphabet of byte-level BPE).</summary>
    static IEnumerable<(int Byte, char Char)> ByteToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        int extra = 0;
        for (int b = 0; b < 256; b++) yield return (b, printable.Contains(b) ? (char)b : (char)(256 + extra++));
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial System.Text.RegularExpressions.Regex Gpt2Pattern();

    static TiktokenTokenizer CreateTiktoken(string encoding, string source) => encoding switch
    {
        // Microsoft.ML.Tokenizers names gpt2 and o200k_base by model rather than by encoding.
        "gpt2" => TiktokenTokenizer.CreateForModel("gpt2"),
        "o200k_base" => TiktokenTokenizer.CreateForModel("gpt-4o"),
        "r50k_base" or "cl100k_base" => TiktokenTokenizer.CreateForEncoding(encoding),
        _ => throw new InvalidDataException($"{source}: unknown tokenizer '{encoding}' (supported: {string.Join(", ", TiktokenEncodings)}, {HfTokenizerFileName})"),
    };

    /// <summary>The first id after the encoding's ordinary ranks (its lowest special-token id);
    /// GenRecal numbers its own special tokens from there.</summary>
    static int TiktokenVocabSize(TiktokenTokenizer t) => t.SpecialTokens?.Values.Min() ?? throw new InvalidDataException("tiktoken encoding without special tokens");

    static JsonObject ParseObject(string path) => Models.ConfigJson.Parse(path).Json;

    /// <summary>The same tokenizer laid out with another chat template (a family whose config.json names its template).</summary>
    public ModelTokenizer WithTemplate(ChatTemplate template) =>
        new(BaseName, baseTokenizer, BaseVocabSize, compactToBase, specialIds, template, HfJson);
}
