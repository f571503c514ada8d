using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// A tokenizer.json run as HF tokenizers runs it: added tokens that are not normalized are found in the raw text;
/// the text between them is normalized, searched for normalized added tokens, pre-tokenized and given to the BPE
/// model piece by piece; decoding maps ids to token strings (added tokens as their content) and runs the decoder.
/// Encoding is HF's encode(add_special_tokens=False): the post_processor (BOS/EOS templates) is read past, not
/// applied, because GenRecal's chat layout writes its special tokens itself. Every other component type or option
/// this reader does not implement is refused by name.
/// </summary>
internal sealed class HfTokenizer
{
    readonly HfNormalizer? normalizer;
    readonly HfPreTokenizer? preTokenizer;
    readonly HfDecoder? decoder;
    readonly HfAddedTokenMatcher raw, normalized;
    readonly Dictionary<int, HfAddedToken> addedById;
    readonly int maxPieceChars;

    HfTokenizer(HfNormalizer? normalizer, HfPreTokenizer? preTokenizer, HfBpeModel model, HfDecoder? decoder, List<HfAddedToken> added, int maxPieceChars)
    {
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        Model = model;
        this.decoder = decoder;
        AddedTokens = added;
        addedById = added.ToDictionary(a => a.Id);
        raw = new(added.Where(a => !a.Normalized).Select(a => (a.Content, a)));
        // HF matches normalized added tokens by their normalized content
        this.normalized = new(added.Where(a => a.Normalized).Select(a => (normalizer?.Normalize(a.Content) ?? a.Content, a)));
        this.maxPieceChars = maxPieceChars;
    }

    public HfBpeModel Model { get; }
    public IReadOnlyList<HfAddedToken> AddedTokens { get; }

    static readonly string[] TopLevelKeys = ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"];

    /// <summary>Reads a parsed tokenizer.json; <paramref name="maxPieceChars"/> cuts longer pre-tokenized pieces (BPE is quadratic in a piece's length).</summary>
    public static HfTokenizer Read(JsonObject json, string path, int maxPieceChars)
    {
        if (json.Select(kv => kv.Key).FirstOrDefault(k => !TopLevelKeys.Contains(k)) is { } unknown)
            throw new InvalidDataException($"{path}: key '{unknown}' is not supported");
        foreach (var key in new[] { "truncation", "padding" })
            if (json[key] is not null) throw new InvalidDataException($"{path}: {key} {Models.ConfigJson.Show(json[key])} is not supported (GenRecal encodes single texts, never truncated or padded)");
        var normalizer = HfNormalizer.Read(json["normalizer"], path);
        var preTokenizer = HfPreTokenizer.Read(json["pre_tokenizer"], path);
        var model = HfBpeModel.Read(json["model"], path);
        var decoder = HfDecoder.Read(json["decoder"], path);
        var added = ReadAddedTokens(json["added_tokens"], path, model);
        return new HfTokenizer(normalizer, preTokenizer, model, decoder, added, maxPieceChars);
    }

    static List<HfAddedToken> ReadAddedTokens(JsonNode? node, string path, HfBpeModel model)
    {
        var list = new List<HfAddedToken>();
        if (node is null) return list;
        var array = node as JsonArray ?? throw new InvalidDataException($"{path}: added_tokens must be an array, found {Models.ConfigJson.Show(node)}");
        for (int i = 0; i < array.Count; i++)
        {
            var a = array[i] as JsonObject ?? throw new InvalidDataException($"{path}: added_tokens[{i}] must be an object");
            string? content = a["content"] is JsonValue c && c.TryGetValue<string>(out var cs) ? cs : null;
            int? id = a["id"] is JsonValue iv && iv.TryGetValue<int>(out var n) && n >= 0 ? n : null;
            if (content is null || id is null) throw new InvalidDataException($"{path}: an added token needs a string 'content' and a non-negative integer 'id', found {Models.ConfigJson.Show(a)}");
            list.Add(ReadFlags(a, id.Value, content, $"{path}: added token '{content}'"));
        }
        Validate(list, model, path);
        return list;
    }

    /// <summary>An added token's flags (HF's defaults: normalized unless special); unknown keys are refused.</summary>
    public static HfAddedToken ReadFlags(JsonObject a, int id, string content, string where)
    {
        bool Flag(string key, bool fallback) => a[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            var other => throw new InvalidDataException($"{where}: '{key}' must be true or false, found {Models.ConfigJson.Show(other)}"),
        };
        if (a.Select(kv => kv.Key).FirstOrDefault(k => k is not ("id" or "content" or "special" or "normalized" or "lstrip" or "rstrip" or "single_word" or "__type")) is { } unknown)
            throw new InvalidDataException($"{where}: option '{unknown}' is not supported");
        bool special = Flag("special", false);
        return new HfAddedToken(id, content, special, Flag("normalized", !special), Flag("lstrip", false), Flag("rstrip", false), Flag("single_word", false));
    }

    /// <summary>An added token may repeat its own vocabulary entry (GPT-2's &lt;|endoftext|&gt;) but never take another text's id.</summary>
    public static void Validate(List<HfAddedToken> added, HfBpeModel model, string path)
    {
        var byId = new Dictionary<int, string>();
        foreach (var a in added)
        {
            if (model.TokenOf(a.Id) is { } inVocab && inVocab != a.Content)
                throw new InvalidDataException($"{path}: added token '{a.Content}' has id {a.Id}, which the vocabulary gives to '{inVocab}'");
            if (byId.TryGetValue(a.Id, out var other) && other != a.Content)
                throw new InvalidDataException($"{path}: added tokens '{other}' and '{a.Content}' share id {a.Id}");
            byId[a.Id] = a.Content;
        }
        foreach (var g in added.GroupBy(a => a.Content).Where(g => g.Select(a => a.Id).Distinct().Count() > 1))
            throw new InvalidDataException($"{path}: added token '{g.Key}' has ids {string.Join(" and ", g.Select(a => a.Id))}");
    }

    /// <summary>Ids of text, added tokens included.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (start, end, token) in raw.Split(text))
        {
            if (token is not null) { ids.Add(token.Id); continue; }
            var norm = normalizer?.Normalize(text[start..end]) ?? text[start..end];
            foreach (var (s, e, t) in normalized.Split(norm))
                if (t is not null) ids.Add(t.Id);
                else EncodePiece(new HfPiece(norm[s..e], start == 0 && s == 0), ids);
        }
        return ids;
    }

    /// <summary>Ids of text with no added tokens looked for.</summary>
    public List<int> EncodeOrdinary(string text)
    {
        var ids = new List<int>();
        if (text.Length > 0) EncodePiece(new HfPiece(normalizer?.Normalize(text) ?? text, true), ids);
        return ids;
    }

    void EncodePiece(HfPiece section, List<int> ids)
    {
        if (section.Text.Length == 0) return;
        var pieces = preTokenizer is null ? [section] : preTokenizer.Split(section);
        foreach (var piece in pieces)
        {
            var text = piece.Text;
            for (int start = 0; start < text.Length;)
            {
                int end = Math.Min(text.Length, start + maxPieceChars);
                if (end < text.Length && char.IsLowSurrogate(text[end])) end--;
                ids.AddRange(Model.Tokenize(text[start..end]));
                start = end;
            }
        }
    }

    /// <summary>Text of ids: added tokens as their content (special ones left out when asked), the rest through the decoder.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            if (addedById.TryGetValue(id, out var a))
            {
                if (!(skipSpecial && a.Special)) tokens.Add(a.Content);
            }
            else tokens.Add(Model.TokenOf(id) ?? throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary ({Model.Size})"));
        }
        return decoder is null ? string.Join(" ", tokens) : string.Concat(decoder.DecodeChain(tokens));
    }
}
