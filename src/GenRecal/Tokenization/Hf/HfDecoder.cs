using System.Text;
using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// A tokenizer.json decoder: a chain over token strings (HF's decode_chain) whose results are concatenated.
/// Unknown types and options are refused.
/// </summary>
internal abstract class HfDecoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    public static HfDecoder? Read(JsonNode? node, string path, string where = "decoder")
    {
        if (node is null) return null;
        var f = new HfFields(node, path, where);
        HfDecoder d = f.Type switch
        {
            "ByteLevel" => ReadByteLevel(f),
            "Metaspace" => ReadMetaspace(f),
            "ByteFallback" => new ByteFallback(),
            "Fuse" => new Fuse(),
            "Strip" => new Strip(f.String("content"), f.Int("start", 0), f.Int("stop", 0)),
            "Replace" => new Replace(f.Pattern("pattern"), f.String("content")),
            "Sequence" => new Sequence(f.Array("decoders").Select((c, i) => Read(c, path, $"{where}.decoders[{i}]")
                ?? throw f.Error($"decoders[{i}] is null")).ToArray()),
            _ => throw f.Unsupported("decoder"),
        };
        f.Done();
        return d;
    }

    static HfDecoder ReadByteLevel(HfFields f)
    {
        // the pre-tokenizer's options, repeated in the decoder by HF's serializer; they do not change decoding
        f.Bool("add_prefix_space", true);
        f.Bool("trim_offsets", true);
        f.Bool("use_regex", true);
        return new ByteLevel();
    }

    static HfDecoder ReadMetaspace(HfFields f)
    {
        var replacement = f.OptionalString("replacement") ?? "▁";
        f.OptionalString("str_rep");
        bool? legacyPrefix = f.Node("add_prefix_space") is null ? null : f.Bool("add_prefix_space", true);
        var scheme = f.OptionalString("prepend_scheme") ?? (legacyPrefix == false ? "never" : "always");
        if (scheme is not ("always" or "first" or "never")) throw f.Error($"prepend_scheme '{scheme}' is not supported (always, first, never)");
        f.Bool("split", true);
        return new Metaspace(replacement, scheme != "never");
    }

    sealed class ByteLevel : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => [ByteLevelAlphabet.Decode(tokens)];
    }

    /// <summary>Replacement back to spaces; in the first token (when a prefix was added) replacements are dropped, as HF does.</summary>
    sealed class Metaspace(string replacement, bool stripFirst) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) =>
            tokens.Select((t, i) => t.Replace(replacement, i == 0 && stripFirst ? "" : " ")).ToList();
    }

    /// <summary>Runs of &lt;0xXX&gt; tokens become their UTF-8 text; an invalid run becomes one U+FFFD per byte.</summary>
    sealed class ByteFallback : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            var output = new List<string>();
            var bytes = new List<byte>();
            void Flush()
            {
                if (bytes.Count == 0) return;
                try { output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.ToArray())); }
                catch (DecoderFallbackException) { output.AddRange(Enumerable.Repeat("\uFFFD", bytes.Count)); }
                bytes.Clear();
            }
            foreach (var t in tokens)
            {
                if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                    && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b))
                    bytes.Add(b);
                else
                {
                    Flush();
                    output.Add(t);
                }
            }
            Flush();
            return output;
        }
    }

    sealed class Fuse : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
    }

    /// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of content from each token.</summary>
    sealed class Strip(string content, int start, int stop) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.Select(t =>
        {
            int s = 0, e = t.Length;
            for (int k = 0; k < start && t.AsSpan(s, e - s).StartsWith(content); k++) s += content.Length;
            for (int k = 0; k < stop && t.AsSpan(s, e - s).EndsWith(content); k++) e -= content.Length;
            return t[s..e];
        }).ToList();
    }

    sealed class Replace(System.Text.RegularExpressions.Regex pattern, string content) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.Select(t => pattern.Replace(t, content.Replace("$", "$$"))).ToList();
    }

    sealed class Sequence(HfDecoder[] steps) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => steps.Aggregate(tokens, (t, s) => s.DecodeChain(t));
    }
}
