using System.Text;

namespace GenRecal.Tokenization.Hf;

/// <summary>GPT-2's reversible map from bytes to printable characters: the alphabet of byte-level BPE.</summary>
internal static class ByteLevelAlphabet
{
    public static readonly char[] CharOfByte = BuildChars();
    static readonly Dictionary<char, byte> ByteOfChar = CharOfByte.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    static char[] BuildChars()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var chars = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++) chars[b] = printable.Contains(b) ? (char)b : (char)(256 + extra++);
        return chars;
    }

    /// <summary>The text's UTF-8 bytes, each as its printable character.</summary>
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = CharOfByte[bytes[i]];
        return new string(chars);
    }

    /// <summary>Bytes of byte-level tokens; a token with a character outside the alphabet (an added token) gives its own UTF-8, as HF's ByteLevel decoder does.</summary>
    public static string Decode(IEnumerable<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens)
        {
            if (t.All(ByteOfChar.ContainsKey)) bytes.AddRange(t.Select(c => ByteOfChar[c]));
            else bytes.AddRange(Encoding.UTF8.GetBytes(t));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
