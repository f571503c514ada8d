using System.Text;
using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// A tokenizer.json normalizer: text in, text out, applied to each stretch of text between added tokens (as HF does,
/// so a Prepend normalizer prefixes every such stretch). Offsets are not tracked: GenRecal never needs them.
/// </summary>
internal abstract class HfNormalizer
{
    public abstract string Normalize(string text);

    /// <summary>The normalizer a tokenizer.json "normalizer" value describes (null for none); other types are refused.</summary>
    public static HfNormalizer? Read(JsonNode? node, string path, string where = "normalizer")
    {
        if (node is null) return null;
        var f = new HfFields(node, path, where);
        HfNormalizer n = f.Type switch
        {
            "NFC" => new Form(NormalizationForm.FormC),
            "NFD" => new Form(NormalizationForm.FormD),
            "NFKC" => new Form(NormalizationForm.FormKC),
            "NFKD" => new Form(NormalizationForm.FormKD),
            "Lowercase" => new Lowercase(),
            "Strip" => new Strip(f.Bool("strip_left", true), f.Bool("strip_right", true)),
            "Replace" => new Replace(f.Pattern("pattern"), f.String("content")),
            "Prepend" => new Prepend(f.String("prepend")),
            "Sequence" => new Sequence(f.Array("normalizers").Select((c, i) => Read(c, path, $"{where}.normalizers[{i}]")
                ?? throw f.Error($"normalizers[{i}] is null")).ToArray()),
            _ => throw f.Unsupported("normalizer"),
        };
        f.Done();
        return n;
    }

    sealed class Form(NormalizationForm form) : HfNormalizer
    {
        public override string Normalize(string text) => text.Normalize(form);
    }

    /// <summary>Unicode lowercase (Rust's str::to_lowercase; .NET's invariant mapping agrees outside a few one-to-many cases such as U+0130).</summary>
    sealed class Lowercase : HfNormalizer
    {
        public override string Normalize(string text) => text.ToLowerInvariant();
    }

    sealed class Strip(bool left, bool right) : HfNormalizer
    {
        public override string Normalize(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
    }

    sealed class Replace(System.Text.RegularExpressions.Regex pattern, string content) : HfNormalizer
    {
        public override string Normalize(string text) => pattern.Replace(text, content.Replace("$", "$$"));
    }

    /// <summary>Prefixes non-empty text (SentencePiece's dummy prefix in Llama-2's fast tokenizer).</summary>
    sealed class Prepend(string prefix) : HfNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    sealed class Sequence(HfNormalizer[] steps) : HfNormalizer
    {
        public override string Normalize(string text) => steps.Aggregate(text, (t, s) => s.Normalize(t));
    }
}
