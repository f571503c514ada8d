namespace GenRecal.Tokenization.Hf;

/// <summary>An entry of tokenizer.json's added_tokens (or tokenizer_config.json's added_tokens_decoder) with HF's flags.</summary>
public sealed record HfAddedToken(int Id, string Content, bool Special, bool Normalized, bool Lstrip = false, bool Rstrip = false, bool SingleWord = false);

/// <summary>
/// Finds added tokens in text as HF's AddedVocabulary does: leftmost-longest matches; a single_word token only
/// between non-word characters; lstrip / rstrip take the whitespace beside the token into it (so it is not encoded).
/// </summary>
internal sealed class HfAddedTokenMatcher
{
    readonly System.Text.RegularExpressions.Regex? pattern;
    readonly Dictionary<string, HfAddedToken> byContent;

    public HfAddedTokenMatcher(IEnumerable<(string Pattern, HfAddedToken Token)> tokens)
    {
        byContent = new();
        foreach (var (p, t) in tokens) if (p.Length > 0) byContent.TryAdd(p, t);
        if (byContent.Count > 0)
            pattern = new(string.Join("|", byContent.Keys.OrderByDescending(s => s.Length).Select(System.Text.RegularExpressions.Regex.Escape)),
                System.Text.RegularExpressions.RegexOptions.CultureInvariant);
    }

    /// <summary>The text cut into stretches of ordinary text (Token null) and added tokens, in order; empty stretches left out.</summary>
    public IEnumerable<(int Start, int End, HfAddedToken? Token)> Split(string text)
    {
        int done = 0;
        if (pattern is not null)
            foreach (System.Text.RegularExpressions.Match m in pattern.Matches(text))
            {
                var token = byContent[m.Value];
                int start = m.Index, stop = m.Index + m.Length;
                if (token.SingleWord && (start > 0 && IsWordChar(text, start - 1, before: true) || stop < text.Length && IsWordChar(text, stop, before: false))) continue;
                if (token.Lstrip) while (start > done && char.IsWhiteSpace(text[start - 1])) start--;
                if (token.Rstrip) while (stop < text.Length && char.IsWhiteSpace(text[stop])) stop++;
                if (start < done) continue; // inside what an earlier rstrip took
                if (done < start) yield return (done, start, null);
                yield return (start, stop, token);
                done = stop;
            }
        if (done < text.Length) yield return (done, text.Length, null);
    }

    static bool IsWordChar(string text, int i, bool before)
    {
        if (before && char.IsLowSurrogate(text[i]) && i > 0) i--;
        var r = System.Text.Rune.GetRuneAt(text, i);
        return System.Text.Rune.IsLetterOrDigit(r) || r.Value == '_';
    }
}
