using System.Text.Json.Nodes;
using GenRecal.Tensors;
using GenRecal.Tokenization.Hf;
using Microsoft.ML.Tokenizers;

namespace GenRecal.Tokenization;

/// <summary>
/// A model's tokenizer: a real base tokenizer (a tiktoken encoding, a HuggingFace tokenizer.json run as HF runs it,
/// HF's slow vocab.json + merges.txt, or a SentencePiece tokenizer.model) plus special tokens, a chat template and,
/// optionally, a compact vocabulary — the subset of base ids a corpus uses, renumbered 0..n-1 in base order — so a
/// demo model need not carry 200k embedding rows. Text outside the compact vocabulary maps to &lt;unk&gt; and is
/// counted, never hidden. Files written: genrecal_tokenizer.json (the project's own data: base, special ids, the
/// <see cref="ChatTemplate"/> record, compact ids), tokenizer_config.json in HF's schema, and tokenizer.json or
/// tokenizer.model when the base is one.
/// </summary>
public sealed partial class ModelTokenizer
{
    /// <summary>The project's own tokenizer file (never HF's tokenizer_config.json, whose schema is HF's).</summary>
    public const string ConfigFileName = "genrecal_tokenizer.json";
    public const string HfConfigFileName = "tokenizer_config.json";
    public const string HfTokenizerFileName = "tokenizer.json";
    public const string SentencePieceFileName = "tokenizer.model";
    public const string UnknownToken = "<unk>";
    public static readonly string[] TiktokenEncodings = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"];

    readonly Tokenizer? mlTokenizer;
    readonly HfTokenizer? hf;
    readonly int[]? compactToBase;
    readonly Dictionary<int, int>? baseToCompact;
    readonly Dictionary<string, int> specialIds;
    readonly Dictionary<int, string> specialById;
    readonly System.Text.RegularExpressions.Regex? specialSplitter;
    readonly byte[]? sentencePieceModel;

    ModelTokenizer(string baseName, Tokenizer? mlTokenizer, HfTokenizer? hf, int baseVocabSize, int[]? compactToBase,
                   IReadOnlyDictionary<string, int> specials, ChatTemplate template, string? hfJson, byte[]? sentencePieceModel, HfTokenNames? names)
    {
        BaseName = baseName;
        this.mlTokenizer = mlTokenizer;
        this.hf = hf;
        BaseVocabSize = baseVocabSize;
        this.compactToBase = compactToBase;
        baseToCompact = compactToBase?.Select((b, i) => (b, i)).ToDictionary(p => p.b, p => p.i);
        specialIds = new Dictionary<string, int>(specials);
        specialById = specialIds.ToDictionary(kv => kv.Value, kv => kv.Key);
        Template = template;
        HfJson = hfJson;
        this.sentencePieceModel = sentencePieceModel;
        this.names = names;
        if (specialIds.Count > 0)
            specialSplitter = new(string.Join("|", specialIds.Keys.OrderByDescending(s => s.Length).Select(System.Text.RegularExpressions.Regex.Escape)));
        VocabSize = Math.Max((compactToBase?.Length ?? baseVocabSize), specialIds.Count == 0 ? 0 : specialIds.Values.Max() + 1);
    }

    readonly HfTokenNames? names;

    /// <summary>The strings HF's tokenizer_config.json names (eos/bos/pad tokens, the Jinja chat_template), when the tokenizer came from HF files.</summary>
    internal sealed record HfTokenNames(string? Eos, string? Bos, string? Pad, string? ChatTemplate);

    /// <summary>"gpt2", "o200k_base", ... , "tokenizer.json" or "tokenizer.model".</summary>
    public string BaseName { get; }
    public int BaseVocabSize { get; }
    public int VocabSize { get; }
    public bool IsCompact => compactToBase is not null;
    /// <summary>Ids of ordinary (non-added) tokens: 0 .. this − 1.</summary>
    public int OrdinaryVocabSize => compactToBase?.Length ?? BaseVocabSize;

    /// <summary>GenRecal's chat layout: the saved record, or ChatML for plain HF files (see <see cref="HfChatTemplate"/>;
    /// a family's LoadTokenizer sets the template its checkpoints use).</summary>
    public ChatTemplate Template { get; }

    /// <summary>True when <see cref="Template"/> is the record saved in GenRecal's own file (genrecal_tokenizer.json, or
    /// the tokenizer_config.json of directories saved before it), not ChatML put on plain HF files.</summary>
    public bool TemplateSaved { get; private init; }
    public IReadOnlyDictionary<string, int> SpecialTokens => specialIds;
    internal string? HfJson { get; }

    /// <summary>The Jinja chat_template of HF's tokenizer_config.json, if it has one (GenRecal does not run Jinja).</summary>
    public string? HfChatTemplate => names?.ChatTemplate;

    /// <summary>End-of-sequence token: HF's eos_token for HF files, else the template's end of turn.</summary>
    public string? EosToken => names is null ? Template.EndOfTurn : names.Eos;

    /// <summary>Beginning-of-sequence token named by HF's tokenizer_config.json (none for GenRecal's own tokenizers).</summary>
    public string? BosToken => names?.Bos;

    /// <summary>Padding token: HF's pad_token for HF files, else the string of <see cref="PadId"/>.</summary>
    public string? PadToken => names is null ? specialById.GetValueOrDefault(PadId) : names.Pad;

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
        return new ModelTokenizer(encoding, tok, null, baseSize, null, specials, template, null, null, null);
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
        return new ModelTokenizer(encoding, full.mlTokenizer, null, full.BaseVocabSize, map, specials, template, null, null, null);
    }

    // ---- encoding -------------------------------------------------------------------------------

    /// <summary>
    /// Token ids of <paramref name="text"/>, special-token strings included; unknown pieces counted. Never adds
    /// BOS/EOS (HF's add_special_tokens=False): the chat layout writes its own special tokens.
    /// </summary>
    public (int[] Ids, int Unknown) EncodeWithReport(string text)
    {
        var ids = new List<int>();
        int unknown = 0;
        foreach (var id in hf?.Encode(text) ?? EncodeSplittingSpecials(text))
        {
            if (baseToCompact is null || specialById.ContainsKey(id)) ids.Add(id);
            else if (baseToCompact.TryGetValue(id, out var c)) ids.Add(c);
            else { ids.Add(UnknownId!.Value); unknown++; }
        }
        return (ids.ToArray(), unknown);
    }

    /// <summary>Special-token strings cut out of the text, the rest through the base tokenizer (tiktoken, SentencePiece).</summary>
    List<int> EncodeSplittingSpecials(string text)
    {
        var ids = new List<int>();
        int pos = 0;
        if (specialSplitter is not null)
            foreach (System.Text.RegularExpressions.Match m in specialSplitter.Matches(text))
            {
                if (m.Index > pos) ids.AddRange(EncodeBaseText(text[pos..m.Index]));
                ids.Add(specialIds[m.Value]);
                pos = m.Index + m.Length;
            }
        if (pos < text.Length) ids.AddRange(EncodeBaseText(text[pos..]));
        return ids;
    }

    public int[] Encode(string text) => EncodeWithReport(text).Ids;

    /// <summary>
    /// Longest run of characters the base BPE sees at once. BPE's time grows with the square of a pre-tokenized word's
    /// length (a 1 MB line without spaces took minutes), so longer runs are cut into pieces of this size and encoded one
    /// after another: linear time, and identical ids for any text without such a run (no natural word comes near it).
    /// tiktoken: runs of whitespace or of non-whitespace characters in the text; tokenizer.json: pre-tokenized pieces
    /// (in byte-level characters for a byte-level BPE). SentencePiece is left uncut (its dummy prefix would repeat).
    /// </summary>
    public const int MaxWordChars = 256;

    /// <summary>Base-tokenizer ids for text with no special tokens in it.</summary>
    public IReadOnlyList<int> EncodeBaseText(string text)
    {
        if (hf is not null) return hf.EncodeOrdinary(text);
        if (mlTokenizer is SentencePieceTokenizer sp) return sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        var cuts = LongRunCuts(text);
        if (cuts.Count == 0) return mlTokenizer!.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        var ids = new List<int>();
        int start = 0;
        foreach (var cut in cuts.Append(text.Length))
        {
            ids.AddRange(mlTokenizer!.EncodeToIds(text[start..cut], considerPreTokenization: true, considerNormalization: true));
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
    public string DecodeBase(IEnumerable<int> baseIds) => hf?.Decode(baseIds, skipSpecial: false) ?? mlTokenizer!.Decode(baseIds);

    /// <summary>Text of ids; special tokens are written out unless <paramref name="skipSpecial"/>
    /// (for tokenizer.json: HF's rule, added tokens not marked special are always written).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = false)
    {
        var baseIds = ids.Select(id =>
        {
            if (compactToBase is null || specialById.ContainsKey(id)) return id;
            if (id < 0 || id >= compactToBase.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary ({VocabSize})");
            return compactToBase[id];
        });
        if (hf is not null) return hf.Decode(baseIds, skipSpecial);
        var sb = new System.Text.StringBuilder();
        var run = new List<int>();
        void Flush()
        {
            if (run.Count == 0) return;
            sb.Append(mlTokenizer!.Decode(run));
            run.Clear();
        }
        foreach (var id in baseIds)
        {
            if (specialById.TryGetValue(id, out var s))
            {
                Flush();
                if (!skipSpecial) sb.Append(s);
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

    /// <summary>The base vocabulary's own string for an id, where the base has one (tokenizer.json, SentencePiece).</summary>
    string? BaseTokenString(int id) => hf is not null ? hf.Model.TokenOf(id)
        : mlTokenizer is SentencePieceTokenizer sp ? SentencePieceTokenOf(sp, id) : null;

    /// <summary>
    /// Null when both tokenizers give every string the same id and every id the same string (same base
    /// vocabulary, same compact map, same special tokens); otherwise what differs. Token-level KD needs null.
    /// </summary>
    public string? VocabularyDifference(ModelTokenizer other)
    {
        if (VocabSize != other.VocabSize) return $"vocabulary sizes {VocabSize} and {other.VocabSize}";
        if (BaseName != other.BaseName || HfJson != other.HfJson || !(sentencePieceModel ?? []).SequenceEqual(other.sentencePieceModel ?? []))
            return $"base tokenizers '{BaseName}' and '{other.BaseName}'";
        if (!(compactToBase ?? []).SequenceEqual(other.compactToBase ?? [])) return "different compact vocabularies over the same base";
        var mine = specialIds.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
        var theirs = other.specialIds.OrderBy(kv => kv.Value).Select(kv => $"{kv.Value}:{kv.Key}");
        return mine.SequenceEqual(theirs) ? null : "different special tokens or special-token ids";
    }

    /// <summary>A HuggingFace tokenizer.json, read as HF tokenizers runs it (see <see cref="Hf.HfTokenizer"/>).</summary>
    public static ModelTokenizer FromHfTokenizerJson(string path, ChatTemplate? template = null)
    {
        var text = File.ReadAllText(path);
        return FromHfJson(ParseObject(path), path, text, template, null);
    }

    static ModelTokenizer FromHfJson(JsonObject json, string path, string text, ChatTemplate? template, HfTokenNames? names)
    {
        HfTokenizer tok;
        try
        {
            tok = HfTokenizer.Read(json, path, MaxWordChars);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a usable tokenizer.json ({e.Message})"); // a JSON value of the wrong type
        }
        var specials = new Dictionary<string, int>();
        foreach (var a in tok.AddedTokens) specials[a.Content] = a.Id;
        return new ModelTokenizer(HfTokenizerFileName, null, tok, tok.Model.Vocab.Count, null, specials, template ?? ChatTemplate.ChatML, text, null, names);
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
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.CharOfByte[b].ToString()] = b;
        var added = new JsonArray();
        foreach (var sp in template.SpecialTokens().Prepend("<|endoftext|>").Prepend(UnknownToken).Distinct())
            added.Add(new JsonObject
            {
                ["id"] = 256 + added.Count, ["content"] = sp, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        var json = new JsonObject
        {
            ["version"] = "1.0", ["added_tokens"] = added, ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        var text = json.ToJsonString(new() { WriteIndented = true });
        return FromHfJson(JsonNode.Parse(text)!.AsObject(), "(byte-level tokenizer)", text, template, null);
    }

    /// <summary>A tokenizer for a new model: the byte-level one, or a compact vocabulary over a tiktoken encoding.</summary>
    public static ModelTokenizer Build(string baseName, IEnumerable<string> corpus, ChatTemplate template) =>
        baseName == BytesBase ? ByteLevel(template) : BuildCompact(baseName, corpus, template);

    static TiktokenTokenizer CreateTiktoken(string encoding, string source) => encoding switch
    {
        // Microsoft.ML.Tokenizers names gpt2 and o200k_base by model rather than by encoding.
        "gpt2" => TiktokenTokenizer.CreateForModel("gpt2"),
        "o200k_base" => TiktokenTokenizer.CreateForModel("gpt-4o"),
        "r50k_base" or "cl100k_base" => TiktokenTokenizer.CreateForEncoding(encoding),
        _ => throw new InvalidDataException($"{source}: unknown tokenizer '{encoding}' (supported: {string.Join(", ", TiktokenEncodings)}, {HfTokenizerFileName}, {SentencePieceFileName})"),
    };

    /// <summary>The first id after the encoding's ordinary ranks (its lowest special-token id);
    /// GenRecal numbers its own special tokens from there.</summary>
    static int TiktokenVocabSize(TiktokenTokenizer t) => t.SpecialTokens?.Values.Min() ?? throw new InvalidDataException("tiktoken encoding without special tokens");

    static JsonObject ParseObject(string path) => Models.ConfigJson.Parse(path).Json;

    /// <summary>The same tokenizer laid out with another chat template (a family whose config.json names its template).</summary>
    public ModelTokenizer WithTemplate(ChatTemplate template) =>
        new(BaseName, mlTokenizer, hf, BaseVocabSize, compactToBase, specialIds, template, HfJson, sentencePieceModel, names);
}
