using System.Globalization;
using System.Text.RegularExpressions;

namespace GenRecal.Evaluation;

/// <summary>Exact match after normalisation (case, whitespace, punctuation, number formats), and option letters.</summary>
public static partial class AnswerScorer
{
    public static string Normalize(string answer)
    {
        var s = answer.Trim().ToLowerInvariant();
        var marker = s.LastIndexOf("answer:", StringComparison.Ordinal);
        if (marker >= 0) s = s[(marker + 7)..]; // an explained answer ends with "Answer: x"
        s = Punctuation().Replace(s, " ");   // everything but letters, digits, spaces and dots
        s = LooseDot().Replace(s, " ");      // dots that are not decimal points
        s = Spaces().Replace(s, " ").Trim();
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            return number.ToString("G15", CultureInfo.InvariantCulture); // "12.0", "12", "012" -> "12"
        return s;
    }

    /// <summary>True when the prediction matches; for a multiple-choice gold answer ("B") a leading option letter counts.</summary>
    public static bool IsCorrect(string prediction, string gold)
    {
        var p = Normalize(prediction);
        var g = Normalize(gold);
        if (p == g) return true;
        if (g.Length == 1 && char.IsLetter(g[0]))
        {
            var m = OptionLetter().Match(prediction.Trim());
            return m.Success && m.Groups[1].Value.ToLowerInvariant() == g;
        }
        return false;
    }

    [GeneratedRegex(@"[^\w\s.]")] private static partial Regex Punctuation();
    [GeneratedRegex(@"(?<!\d)\.|\.(?!\d)")] private static partial Regex LooseDot();
    [GeneratedRegex(@"\s+")] private static partial Regex Spaces();
    [GeneratedRegex(@"^\(?([A-Za-z])[\).:]?(\s|$)")] private static partial Regex OptionLetter();
}
