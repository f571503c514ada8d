using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// Translates the Oniguruma patterns HF tokenizer files are written for into .NET regexes with the same meaning on
/// code points. .NET matches UTF-16 code units, so a class such as <c>\p{L}</c> would never match a letter outside
/// the BMP (its two surrogates are category Cs) and <c>[^\s\p{L}\p{N}]</c> would match each half separately; every
/// class, property and shorthand is therefore expanded into explicit BMP ranges plus surrogate-pair alternatives
/// computed from one code-point predicate. <c>\s</c>, <c>\d</c>, <c>\w</c> and <c>\h</c> take Oniguruma's Unicode
/// sets; possessive quantifiers (<c>x?+</c>, <c>\p{N}{1,3}+</c>), which .NET lacks, become atomic groups; <c>^</c>
/// and <c>$</c> are line anchors as in Oniguruma's Ruby syntax. Constructs it does not know (nested classes, class
/// intersections, \G, POSIX brackets) are refused, never passed through with another meaning.
/// </summary>
internal static class HfRegex
{
    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Regex> Cache = new();

    /// <summary>The compiled .NET equivalent of an Oniguruma pattern; <paramref name="source"/> names the file in errors.</summary>
    public static Regex Compile(string pattern, string source)
    {
        try
        {
            return Cache.GetOrAdd(pattern, p => new Regex(Translate(p), RegexOptions.CultureInvariant | RegexOptions.Compiled));
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{source}: regex '{pattern}' is not supported ({e.Message})");
        }
    }

    /// <summary>The .NET form of an Oniguruma pattern (exposed for tests).</summary>
    public static string Translate(string p)
    {
        var sb = new StringBuilder();
        var groupStarts = new Stack<int>();
        int lastAtom = -1;
        int i = 0;
        while (i < p.Length)
        {
            char c = p[i];
            switch (c)
            {
                case '[':
                {
                    lastAtom = sb.Length;
                    var (set, next) = ParseClass(p, i);
                    sb.Append(Emit(set));
                    i = next;
                    break;
                }
                case '\\':
                {
                    lastAtom = sb.Length;
                    i = TranslateEscape(p, i, sb);
                    break;
                }
                case '(':
                {
                    groupStarts.Push(sb.Length);
                    int end = GroupPrefixEnd(p, i);
                    sb.Append(p, i, end - i);
                    if (end > i + 1 && p[end - 1] == ')')
                    {
                        // an inline option switch such as (?i): no group, no atom
                        groupStarts.Pop();
                        lastAtom = -1;
                    }
                    i = end;
                    break;
                }
                case ')':
                    if (groupStarts.Count == 0) throw new ArgumentException($"unbalanced ')' at offset {i}");
                    lastAtom = groupStarts.Pop();
                    sb.Append(')');
                    i++;
                    break;
                case '.':
                    lastAtom = sb.Length;
                    sb.Append(Emit(cp => cp != '\n'));
                    i++;
                    break;
                case '^':
                    sb.Append(@"(?<![^\n])");
                    lastAtom = -1;
                    i++;
                    break;
                case '$':
                    sb.Append(@"(?![^\n])");
                    lastAtom = -1;
                    i++;
                    break;
                case '?' or '*' or '+' or '{':
                {
                    int end = QuantifierEnd(p, i);
                    if (end < 0) goto default; // a literal '{'
                    if (lastAtom < 0) throw new ArgumentException($"quantifier without an atom at offset {i}");
                    sb.Append(p, i, end - i);
                    if (end < p.Length && p[end] == '+')
                    {
                        // possessive: Oniguruma's x?+ is .NET's (?>x?)
                        sb.Insert(lastAtom, "(?>");
                        sb.Append(')');
                        end++;
                    }
                    else if (end < p.Length && p[end] == '?') { sb.Append('?'); end++; }
                    i = end;
                    break;
                }
                default:
                    lastAtom = sb.Length;
                    if (char.IsHighSurrogate(c) && i + 1 < p.Length)
                    {
                        sb.Append("(?:").Append(c).Append(p[i + 1]).Append(')');
                        i += 2;
                    }
                    else
                    {
                        sb.Append(c is '#' or ' ' ? "\\" + c : c.ToString());
                        i++;
                    }
                    break;
            }
        }
        if (groupStarts.Count > 0) throw new ArgumentException("unbalanced '('");
        return sb.ToString();
    }

    /// <summary>End of a group's opening: "(", "(?:", "(?i:", "(?=", "(?!", "(?>", "(?<=", "(?<!", "(?<name>", or a whole "(?i)".</summary>
    static int GroupPrefixEnd(string p, int i)
    {
        if (i + 1 >= p.Length || p[i + 1] != '?') return i + 1;
        int j = i + 2;
        if (j < p.Length && p[j] is '=' or '!' or '>' or ':') return j + 1;
        if (j < p.Length && p[j] == '<')
        {
            if (j + 1 < p.Length && p[j + 1] is '=' or '!') return j + 2;
            int close = p.IndexOf('>', j);
            if (close > j + 1 && p[(j + 1)..close].All(c => char.IsLetterOrDigit(c) || c == '_')) return close + 1;
            throw new ArgumentException($"group construct at offset {i}");
        }
        while (j < p.Length && p[j] is 'i' or '-') j++; // only i: Oniguruma's m is .NET's s, and x changes parsing
        if (j > i + 2 && j < p.Length && p[j] is ':' or ')') return j + 1;
        throw new ArgumentException($"group construct at offset {i}");
    }

    /// <summary>End of the quantifier at <paramref name="i"/> (before any lazy/possessive suffix); -1 for a '{' that is a literal.</summary>
    static int QuantifierEnd(string p, int i)
    {
        if (p[i] != '{') return i + 1;
        var m = Regex.Match(p[i..], @"^\{\d+(,\d*)?\}|^\{,\d+\}");
        return m.Success ? i + m.Length : -1;
    }

    static int TranslateEscape(string p, int i, StringBuilder sb)
    {
        if (i + 1 >= p.Length) throw new ArgumentException("pattern ends in '\\'");
        char e = p[i + 1];
        switch (e)
        {
            case 'A' or 'z' or 'Z' or 'b' or 'B':
                sb.Append('\\').Append(e);
                return i + 2;
            case 'G' or 'K' or 'R' or 'X' or 'y' or 'Y' or 'g' or 'k' or 'O' or 'N':
                throw new ArgumentException($"escape '\\{e}'");
            case >= '1' and <= '9':
                sb.Append('\\').Append(e);
                return i + 2;
        }
        var (set, next) = ParseSetEscape(p, i);
        if (set is not null) sb.Append(Emit(set));
        else
        {
            var (cp, after) = ParseLiteralEscape(p, i);
            sb.Append(Literal(cp));
            next = after;
        }
        return next;
    }

    /// <summary>\p{..}, \P{..}, \s, \d, \w, \h and their negations; null for any other escape.</summary>
    static (Func<int, bool>? Set, int Next) ParseSetEscape(string p, int i)
    {
        char e = p[i + 1];
        switch (e)
        {
            case 's': return (IsSpace, i + 2);
            case 'S': return (cp => !IsSpace(cp), i + 2);
            case 'd': return (IsDigit, i + 2);
            case 'D': return (cp => !IsDigit(cp), i + 2);
            case 'w': return (IsWord, i + 2);
            case 'W': return (cp => !IsWord(cp), i + 2);
            case 'h': return (IsHex, i + 2);
            case 'H': return (cp => !IsHex(cp), i + 2);
            case 'p' or 'P':
            {
                if (i + 2 >= p.Length || p[i + 2] != '{') throw new ArgumentException($"'\\{e}' without {{name}}");
                int close = p.IndexOf('}', i + 3);
                if (close < 0) throw new ArgumentException($"unterminated '\\{e}{{'");
                var name = p[(i + 3)..close];
                bool negate = e == 'P';
                if (name.StartsWith('^')) { negate = !negate; name = name[1..]; }
                var cats = Categories(name);
                return (negate ? cp => !cats.Contains(Category(cp)) : cp => cats.Contains(Category(cp)), close + 1);
            }
            default: return (null, i);
        }
    }

    static (int CodePoint, int Next) ParseLiteralEscape(string p, int i)
    {
        char e = p[i + 1];
        switch (e)
        {
            case 't': return ('\t', i + 2);
            case 'n': return ('\n', i + 2);
            case 'r': return ('\r', i + 2);
            case 'f': return ('\f', i + 2);
            case 'v': return ('\v', i + 2);
            case 'a': return ('\a', i + 2);
            case 'e': return ('\u001b', i + 2);
            case 'x' when i + 2 < p.Length && p[i + 2] == '{':
            {
                int close = p.IndexOf('}', i + 3);
                if (close < 0) throw new ArgumentException("unterminated '\\x{'");
                return (int.Parse(p[(i + 3)..close], NumberStyles.HexNumber, CultureInfo.InvariantCulture), close + 1);
            }
            case 'x': return (int.Parse(p.Substring(i + 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture), i + 4);
            case 'u': return (int.Parse(p.Substring(i + 2, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture), i + 6);
        }
        if (char.IsLetterOrDigit(e)) throw new ArgumentException($"escape '\\{e}'");
        if (char.IsHighSurrogate(e) && i + 2 < p.Length) return (char.ConvertToUtf32(e, p[i + 2]), i + 3);
        return (e, i + 2);
    }

    /// <summary>A bracket class as a code-point predicate; nested classes and intersections are refused.</summary>
    static (Func<int, bool> Set, int Next) ParseClass(string p, int i)
    {
        int j = i + 1;
        bool negate = j < p.Length && p[j] == '^';
        if (negate) j++;
        var items = new List<Func<int, bool>>();
        bool first = true;
        while (true)
        {
            if (j >= p.Length) throw new ArgumentException($"unterminated class at offset {i}");
            char c = p[j];
            if (c == ']' && !first) { j++; break; }
            first = false;
            if (c == '[') throw new ArgumentException($"nested class or POSIX bracket at offset {j}");
            if (c == '&' && j + 1 < p.Length && p[j + 1] == '&') throw new ArgumentException($"class intersection at offset {j}");
            int lo;
            if (c == '\\')
            {
                var (set, next) = ParseSetEscape(p, j);
                if (set is not null) { items.Add(set); j = next; continue; }
                if (p[j + 1] == 'b') { lo = '\b'; j += 2; }
                else (lo, j) = ParseLiteralEscape(p, j);
            }
            else
            {
                lo = char.ConvertToUtf32(p, j);
                j += char.IsSurrogatePair(p, j) ? 2 : 1;
            }
            if (j + 1 < p.Length && p[j] == '-' && p[j + 1] != ']')
            {
                int hi;
                if (p[j + 1] == '\\') (hi, j) = ParseLiteralEscape(p, j + 1);
                else { hi = char.ConvertToUtf32(p, j + 1); j += 1 + (char.IsSurrogatePair(p, j + 1) ? 2 : 1); }
                if (hi < lo) throw new ArgumentException($"range out of order in class at offset {i}");
                int a = lo, b = hi;
                items.Add(cp => cp >= a && cp <= b);
            }
            else
            {
                int a = lo;
                items.Add(cp => cp == a);
            }
        }
        var all = items.ToArray();
        return (negate ? cp => !all.Any(f => f(cp)) : cp => all.Any(f => f(cp)), j);
    }

    /// <summary>A predicate over code points as .NET regex: a BMP class, or-ed with surrogate pairs for the astral part.</summary>
    static string Emit(Func<int, bool> set)
    {
        var bmp = Ranges(cp => cp is < 0xD800 or > 0xDFFF && set(cp), 0, 0xFFFF);
        var astral = new List<string>();
        // group high surrogates whose low-surrogate sets are identical
        string? prevLows = null;
        int groupStart = 0;
        void Close(int endHigh)
        {
            if (prevLows is null) return;
            astral.Add($"{ClassOf([(groupStart, endHigh)])}{prevLows}");
        }
        for (int high = 0xD800; high <= 0xDBFF; high++)
        {
            int baseCp = 0x10000 + ((high - 0xD800) << 10);
            var lows = Ranges(cp => set(cp), baseCp, baseCp + 0x3FF).Select(r => (r.Lo - baseCp + 0xDC00, r.Hi - baseCp + 0xDC00)).ToList();
            string? lowsClass = lows.Count == 0 ? null : ClassOf(lows);
            if (lowsClass != prevLows)
            {
                Close(high - 1);
                prevLows = lowsClass;
                groupStart = high;
            }
        }
        Close(0xDBFF);
        if (bmp.Count == 0 && astral.Count == 0) return "(?!)";
        var parts = new List<string>();
        if (bmp.Count > 0) parts.Add(ClassOf(bmp));
        parts.AddRange(astral);
        return parts.Count == 1 ? parts[0] : "(?:" + string.Join("|", parts) + ")";
    }

    static string ClassOf(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sb = new StringBuilder("[");
        foreach (var (lo, hi) in ranges)
        {
            sb.Append($"\\u{lo:X4}");
            if (hi > lo) sb.Append($"-\\u{hi:X4}");
        }
        return sb.Append(']').ToString();
    }

    static List<(int Lo, int Hi)> Ranges(Func<int, bool> set, int from, int to)
    {
        var list = new List<(int, int)>();
        int start = -1;
        for (int cp = from; cp <= to + 1; cp++)
        {
            bool inSet = cp <= to && set(cp);
            if (inSet && start < 0) start = cp;
            else if (!inSet && start >= 0) { list.Add((start, cp - 1)); start = -1; }
        }
        return list;
    }

    static string Literal(int cp)
    {
        if (cp > 0xFFFF) return "(?:" + Regex.Escape(char.ConvertFromUtf32(cp)) + ")";
        return cp < 0x80 && !char.IsLetterOrDigit((char)cp) ? $"\\u{cp:X4}" : ((char)cp).ToString();
    }

    static UnicodeCategory Category(int cp) => cp is >= 0xD800 and <= 0xDFFF ? UnicodeCategory.Surrogate : CharUnicodeInfo.GetUnicodeCategory(cp);

    /// <summary>Oniguruma's Unicode \s (White_Space): no U+FEFF, unlike JavaScript.</summary>
    internal static bool IsSpace(int cp) => cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A) or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
    static bool IsDigit(int cp) => Category(cp) == UnicodeCategory.DecimalDigitNumber;
    static bool IsHex(int cp) => cp is >= '0' and <= '9' or >= 'a' and <= 'f' or >= 'A' and <= 'F';
    static bool IsWord(int cp) => Category(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
        or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
        or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;

    static readonly Dictionary<string, UnicodeCategory[]> CategoryNames = BuildCategoryNames();

    static Dictionary<string, UnicodeCategory[]> BuildCategoryNames()
    {
        var d = new Dictionary<string, UnicodeCategory[]>(StringComparer.OrdinalIgnoreCase)
        {
            ["Lu"] = [UnicodeCategory.UppercaseLetter], ["Ll"] = [UnicodeCategory.LowercaseLetter], ["Lt"] = [UnicodeCategory.TitlecaseLetter],
            ["Lm"] = [UnicodeCategory.ModifierLetter], ["Lo"] = [UnicodeCategory.OtherLetter],
            ["Mn"] = [UnicodeCategory.NonSpacingMark], ["Mc"] = [UnicodeCategory.SpacingCombiningMark], ["Me"] = [UnicodeCategory.EnclosingMark],
            ["Nd"] = [UnicodeCategory.DecimalDigitNumber], ["Nl"] = [UnicodeCategory.LetterNumber], ["No"] = [UnicodeCategory.OtherNumber],
            ["Pc"] = [UnicodeCategory.ConnectorPunctuation], ["Pd"] = [UnicodeCategory.DashPunctuation], ["Ps"] = [UnicodeCategory.OpenPunctuation],
            ["Pe"] = [UnicodeCategory.ClosePunctuation], ["Pi"] = [UnicodeCategory.InitialQuotePunctuation], ["Pf"] = [UnicodeCategory.FinalQuotePunctuation],
            ["Po"] = [UnicodeCategory.OtherPunctuation],
            ["Sm"] = [UnicodeCategory.MathSymbol], ["Sc"] = [UnicodeCategory.CurrencySymbol], ["Sk"] = [UnicodeCategory.ModifierSymbol], ["So"] = [UnicodeCategory.OtherSymbol],
            ["Zs"] = [UnicodeCategory.SpaceSeparator], ["Zl"] = [UnicodeCategory.LineSeparator], ["Zp"] = [UnicodeCategory.ParagraphSeparator],
            ["Cc"] = [UnicodeCategory.Control], ["Cf"] = [UnicodeCategory.Format], ["Cs"] = [UnicodeCategory.Surrogate],
            ["Co"] = [UnicodeCategory.PrivateUse], ["Cn"] = [UnicodeCategory.OtherNotAssigned],
        };
        foreach (var (letter, name) in new[] { ("L", "Letter"), ("M", "Mark"), ("N", "Number"), ("P", "Punctuation"), ("S", "Symbol"), ("Z", "Separator"), ("C", "Other") })
        {
            var cats = d.Where(kv => kv.Key.Length == 2 && kv.Key[0] == letter[0]).SelectMany(kv => kv.Value).ToArray();
            d[letter] = cats;
            d[name] = cats;
        }
        return d;
    }

    static HashSet<UnicodeCategory> Categories(string name) =>
        CategoryNames.TryGetValue(name, out var cats) ? [.. cats] : throw new ArgumentException($"unknown property '\\p{{{name}}}'");
}
