using System.Text;
using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// HF's BPE model: each pre-tokenized piece starts as its characters (code points); the adjacent pair with the
/// lowest merge rank is merged, leftmost first, until no pair has a rank. A character outside the vocabulary
/// becomes its UTF-8 bytes as &lt;0xXX&gt; tokens (byte_fallback), else the unk token (consecutive ones fused with
/// fuse_unk), else it is dropped, as HF drops it. With ignore_merges a piece that is itself a token is taken whole.
/// </summary>
internal sealed class HfBpeModel
{
    readonly Dictionary<string, int> vocab;
    readonly string[] tokenOfId;
    readonly Dictionary<(int, int), (int Rank, int Id)> merges;
    readonly int? unkId;
    readonly bool byteFallback, fuseUnk, ignoreMerges;
    readonly Dictionary<string, int[]> cache = new();
    const int CacheLimit = 100_000;

    HfBpeModel(Dictionary<string, int> vocab, Dictionary<(int, int), (int, int)> merges, int? unkId, bool byteFallback, bool fuseUnk, bool ignoreMerges)
    {
        this.vocab = vocab;
        tokenOfId = new string[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (t, id) in vocab) tokenOfId[id] = t;
        this.merges = merges;
        this.unkId = unkId;
        this.byteFallback = byteFallback;
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
    }

    public IReadOnlyDictionary<string, int> Vocab => vocab;

    /// <summary>Size of the id space (highest id + 1).</summary>
    public int Size => tokenOfId.Length;

    public string? TokenOf(int id) => id >= 0 && id < tokenOfId.Length ? tokenOfId[id] : null;

    public static HfBpeModel Read(JsonNode? node, string path)
    {
        var f = new HfFields(node, path, "model");
        if (f.Type != "BPE") throw f.Unsupported("model");
        if (f.Node("dropout") is { } dropout && !(dropout is JsonValue d && d.TryGetValue<double>(out var p) && p == 0))
            throw f.Error($"dropout {Models.ConfigJson.Show(dropout)} is not supported (BPE dropout makes encoding random)");
        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (f.OptionalString(key) is { Length: > 0 } affix) throw f.Error($"{key} '{affix}' is not supported");
        var vocabJson = f.Node("vocab") as JsonObject ?? throw f.Error("needs an object 'vocab'");
        var vocab = new Dictionary<string, int>();
        var byId = new Dictionary<int, string>();
        foreach (var (token, idNode) in vocabJson)
        {
            if (!(idNode is JsonValue v && v.TryGetValue<int>(out var id) && id >= 0))
                throw f.Error($"vocab['{token}'] must be a non-negative integer id, found {Models.ConfigJson.Show(idNode)}");
            if (!byId.TryAdd(id, token)) throw f.Error($"vocab gives id {id} to both '{byId[id]}' and '{token}'");
            vocab[token] = id;
        }
        var mergeList = f.Array("merges").Select(m => m switch
        {
            JsonArray pair when pair.Count == 2 && pair[0] is JsonValue a && a.TryGetValue<string>(out var sa) && pair[1] is JsonValue b && b.TryGetValue<string>(out var sb) => (sa, sb),
            JsonValue v when v.TryGetValue<string>(out var s) && s.Split(' ') is [var l, var r] => (l, r),
            _ => throw f.Error($"merge must be \"a b\" or [\"a\", \"b\"], found {Models.ConfigJson.Show(m)}"),
        }).ToList();
        var unk = f.OptionalString("unk_token");
        int? unkId = unk is null ? null : vocab.TryGetValue(unk, out var u) ? u : throw f.Error($"unk_token '{unk}' is not in the vocabulary");
        var model = FromMerges(vocab, mergeList, unkId, f.Bool("byte_fallback", false), f.Bool("fuse_unk", false), f.Bool("ignore_merges", false), f.Error);
        f.Done();
        return model;
    }

    public static HfBpeModel FromMerges(Dictionary<string, int> vocab, List<(string Left, string Right)> mergeList, int? unkId,
                                        bool byteFallback, bool fuseUnk, bool ignoreMerges, Func<string, InvalidDataException> error)
    {
        var merges = new Dictionary<(int, int), (int, int)>();
        for (int rank = 0; rank < mergeList.Count; rank++)
        {
            var (l, r) = mergeList[rank];
            if (!vocab.TryGetValue(l, out var li) || !vocab.TryGetValue(r, out var ri))
                throw error($"merge {rank} ('{l} {r}') names a token that is not in the vocabulary");
            if (!vocab.TryGetValue(l + r, out var merged))
                throw error($"merge {rank} ('{l} {r}') makes '{l + r}', which is not in the vocabulary");
            merges.TryAdd((li, ri), (rank, merged)); // HF keeps the first rank of a repeated merge
        }
        return new HfBpeModel(vocab, merges, unkId, byteFallback, fuseUnk, ignoreMerges);
    }

    /// <summary>Ids of one pre-tokenized piece.</summary>
    public int[] Tokenize(string piece)
    {
        if (cache.TryGetValue(piece, out var hit)) return hit;
        int[] ids = ignoreMerges && vocab.TryGetValue(piece, out var whole) ? [whole] : Merge(Symbols(piece));
        if (cache.Count >= CacheLimit) cache.Clear();
        cache[piece] = ids;
        return ids;
    }

    List<int> Symbols(string piece)
    {
        var symbols = new List<int>();
        bool lastUnk = false;
        foreach (var rune in piece.EnumerateRunes())
        {
            var s = rune.ToString();
            if (vocab.TryGetValue(s, out var id)) { symbols.Add(id); lastUnk = false; continue; }
            if (byteFallback)
            {
                var bytes = new byte[rune.Utf8SequenceLength];
                rune.EncodeToUtf8(bytes);
                var byteIds = bytes.Select(b => vocab.TryGetValue($"<0x{b:X2}>", out var bid) ? bid : -1).ToArray();
                if (byteIds.All(b => b >= 0)) { symbols.AddRange(byteIds); lastUnk = false; continue; }
            }
            if (unkId is { } unk)
            {
                if (!(fuseUnk && lastUnk)) symbols.Add(unk);
                lastUnk = true;
            }
        }
        return symbols;
    }

    /// <summary>Applies merges lowest rank first (leftmost among equal ranks). Pieces are short (see ModelTokenizer.MaxWordChars), so a scan per merge is enough.</summary>
    int[] Merge(List<int> symbols)
    {
        while (symbols.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue, bestId = 0;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (merges.TryGetValue((symbols[i], symbols[i + 1]), out var m) && m.Rank < bestRank)
                    (best, bestRank, bestId) = (i, m.Rank, m.Id);
            if (best < 0) break;
            symbols[best] = bestId;
            symbols.RemoveAt(best + 1);
        }
        return symbols.ToArray();
    }
}
