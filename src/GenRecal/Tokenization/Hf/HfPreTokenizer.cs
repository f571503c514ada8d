using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace GenRecal.Tokenization.Hf;

/// <summary>A piece of text on its way to the model; <see cref="AtStart"/> when it begins the whole input
/// (Metaspace's prepend_scheme "first" prefixes only that one).</summary>
internal readonly record struct HfPiece(string Text, bool AtStart);

/// <summary>
/// A tokenizer.json pre-tokenizer: splits pieces into smaller pieces the BPE model never merges across, as HF's Rust
/// implementation does (its split behaviours, char patterns and defaults). Unknown types and options are refused.
/// </summary>
internal abstract class HfPreTokenizer
{
    public abstract IEnumerable<HfPiece> Split(HfPiece piece);

    public static HfPreTokenizer? Read(JsonNode? node, string path, string where = "pre_tokenizer")
    {
        if (node is null) return null;
        var f = new HfFields(node, path, where);
        HfPreTokenizer p = f.Type switch
        {
            "Split" => new RegexSplit(f.Pattern("pattern"), ReadBehavior(f), f.Bool("invert", false)),
            "ByteLevel" => ReadByteLevel(f),
            "Digits" => new CharSplit(c => CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber,
                f.Bool("individual_digits", false) ? Behavior.Isolated : Behavior.Contiguous),
            "Metaspace" => ReadMetaspace(f),
            "Whitespace" => new RegexSplit(HfRegex.Compile(@"\w+|[^\w\s]+", path), Behavior.Removed, invert: true),
            "WhitespaceSplit" => new CharSplit(c => HfRegex.IsSpace(c), Behavior.Removed),
            "Sequence" => new Sequence(f.Array("pretokenizers").Select((c, i) => Read(c, path, $"{where}.pretokenizers[{i}]")
                ?? throw f.Error($"pretokenizers[{i}] is null")).ToArray()),
            _ => throw f.Unsupported("pre-tokenizer"),
        };
        f.Done();
        return p;
    }

    public enum Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

    static Behavior ReadBehavior(HfFields f)
    {
        var name = f.String("behavior");
        return Enum.GetNames<Behavior>().Contains(name) ? Enum.Parse<Behavior>(name)
            : throw f.Error($"behavior '{name}' is not supported (known: {string.Join(", ", Enum.GetNames<Behavior>())})");
    }

    static HfPreTokenizer ReadByteLevel(HfFields f)
    {
        bool prefix = f.Bool("add_prefix_space", true);
        f.Bool("trim_offsets", true); // offsets only
        bool regex = f.Bool("use_regex", true);
        return new ByteLevelSplit(prefix, regex ? HfRegex.Compile(Gpt2Pattern, f.Path) : null);
    }

    static HfPreTokenizer ReadMetaspace(HfFields f)
    {
        var replacement = f.OptionalString("replacement") ?? "▁";
        if (replacement.EnumerateRunes().Count() != 1) throw f.Error($"replacement '{replacement}' must be one character");
        f.OptionalString("str_rep"); // legacy copy of replacement
        bool? legacyPrefix = f.Node("add_prefix_space") is null ? null : f.Bool("add_prefix_space", true);
        var scheme = f.OptionalString("prepend_scheme") ?? (legacyPrefix == false ? "never" : "always");
        if (scheme is not ("always" or "first" or "never")) throw f.Error($"prepend_scheme '{scheme}' is not supported (always, first, never)");
        return new Metaspace(replacement, scheme, f.Bool("split", true));
    }

    /// <summary>GPT-2's pre-tokenization pattern, as HF's ByteLevel(use_regex=true) uses it.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Pieces from matches that cover the text (match or gap), combined as HF's SplitDelimiterBehavior says.</summary>
    protected static IEnumerable<HfPiece> Combine(HfPiece piece, List<(int Start, int End, bool Match)> spans, Behavior behavior)
    {
        var parts = new List<(int Start, int End, bool Match)>();
        bool previousMatch = false;
        switch (behavior)
        {
            case Behavior.Removed: parts = spans.Where(s => !s.Match).ToList(); break;
            case Behavior.Isolated: parts = spans; break;
            case Behavior.MergedWithPrevious:
                foreach (var s in spans)
                {
                    if (s.Match && !previousMatch && parts.Count > 0) parts[^1] = (parts[^1].Start, s.End, parts[^1].Match);
                    else parts.Add(s);
                    previousMatch = s.Match;
                }
                break;
            case Behavior.MergedWithNext:
                for (int k = spans.Count - 1; k >= 0; k--)
                {
                    var s = spans[k];
                    if (s.Match && !previousMatch && parts.Count > 0) parts[^1] = (s.Start, parts[^1].End, parts[^1].Match);
                    else parts.Add(s);
                    previousMatch = s.Match;
                }
                parts.Reverse();
                break;
            case Behavior.Contiguous:
                foreach (var s in spans)
                {
                    if (s.Match == previousMatch && parts.Count > 0) parts[^1] = (parts[^1].Start, s.End, parts[^1].Match);
                    else parts.Add(s);
                    previousMatch = s.Match;
                }
                break;
        }
        foreach (var (start, end, _) in parts)
            if (end > start) yield return new HfPiece(piece.Text[start..end], piece.AtStart && start == 0);
    }

    sealed class RegexSplit(Regex pattern, Behavior behavior, bool invert) : HfPreTokenizer
    {
        public override IEnumerable<HfPiece> Split(HfPiece piece)
        {
            var spans = new List<(int, int, bool)>();
            int prev = 0;
            foreach (Match m in pattern.Matches(piece.Text))
            {
                if (prev != m.Index) spans.Add((prev, m.Index, invert));
                spans.Add((m.Index, m.Index + m.Length, !invert));
                prev = m.Index + m.Length;
            }
            if (prev != piece.Text.Length) spans.Add((prev, piece.Text.Length, invert));
            return Combine(piece, spans, behavior);
        }
    }

    /// <summary>Splits on single characters (code points) a predicate accepts: Rust's char patterns.</summary>
    sealed class CharSplit(Func<int, bool> isDelimiter, Behavior behavior) : HfPreTokenizer
    {
        public override IEnumerable<HfPiece> Split(HfPiece piece) => Combine(piece, CharSpans(piece.Text, isDelimiter), behavior);
    }

    static List<(int Start, int End, bool Match)> CharSpans(string text, Func<int, bool> isDelimiter)
    {
        var spans = new List<(int, int, bool)>();
        int last = 0;
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            int cp = char.ConvertToUtf32(text, i);
            if (!isDelimiter(cp)) continue;
            int len = cp > 0xFFFF ? 2 : 1;
            if (last < i) spans.Add((last, i, false));
            spans.Add((i, i + len, true));
            last = i + len;
        }
        if (last < text.Length) spans.Add((last, text.Length, false));
        return spans;
    }

    /// <summary>GPT-2's byte-level step: optional prefix space, optional GPT-2 split, then every UTF-8 byte as its printable character.</summary>
    sealed class ByteLevelSplit(bool addPrefixSpace, Regex? gpt2) : HfPreTokenizer
    {
        public override IEnumerable<HfPiece> Split(HfPiece piece)
        {
            var p = addPrefixSpace && !piece.Text.StartsWith(' ') ? piece with { Text = " " + piece.Text } : piece;
            var parts = gpt2 is null ? [p] : new RegexSplit(gpt2, Behavior.Isolated, false).Split(p);
            return parts.Select(x => x with { Text = ByteLevelAlphabet.Encode(x.Text) });
        }
    }

    /// <summary>SentencePiece's spaces: ' ' becomes the replacement, prefixed per prepend_scheme, split before each replacement.</summary>
    sealed class Metaspace(string replacement, string scheme, bool split) : HfPreTokenizer
    {
        public override IEnumerable<HfPiece> Split(HfPiece piece)
        {
            var text = piece.Text.Replace(" ", replacement);
            if (!text.StartsWith(replacement, StringComparison.Ordinal) && (scheme == "always" || scheme == "first" && piece.AtStart)) text = replacement + text;
            var p = piece with { Text = text };
            if (!split) return [p];
            int r = char.ConvertToUtf32(replacement, 0);
            return Combine(p, CharSpans(text, cp => cp == r), Behavior.MergedWithNext);
        }
    }

    sealed class Sequence(HfPreTokenizer[] steps) : HfPreTokenizer
    {
        public override IEnumerable<HfPiece> Split(HfPiece piece) =>
            steps.Aggregate((IEnumerable<HfPiece>)[piece], (pieces, step) => pieces.SelectMany(step.Split).ToList());
    }
}
