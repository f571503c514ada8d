using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenRecal.Tokenization;

namespace GenRecal.Data;

/// <summary>
/// Reads LLaVA conversation JSON lines: {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]},
/// image paths relative to the file. Every unusable line is reported with its number and reason;
/// nothing is dropped silently — callers decide whether problems stop the run.
/// </summary>
public static class LlavaDataset
{
    public sealed record Result(List<ConversationExample> Examples, List<DataProblem> Problems);

    /// <summary>Longest data line read (bytes): a longer one is reported and skipped without being held in memory.</summary>
    public const int MaxLineBytes = 1 << 20;
    /// <summary>Longest turn (characters); far beyond any max_length in tokens, short enough to tokenize at once.</summary>
    public const int MaxTurnChars = 32_768;
    /// <summary>LLaVA's image placeholder in the data's text.</summary>
    public const string ImageTag = "<image>";

    public static Result Load(string path, bool checkImages = true)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"{path}: is a directory; expected a JSON-lines data file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var examples = new List<ConversationExample>();
        var problems = new List<DataProblem>();
        var checkedImages = new Dictionary<string, string?>();
        foreach (var (lineNo, line, unreadable) in ReadLines(path))
        {
            if (unreadable is not null) { problems.Add(new DataProblem(path, lineNo, unreadable)); continue; }
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                var ex = Parse(line, dir, lineNo);
                if (ex.ImagePath is { } img && checkImages)
                {
                    if (!checkedImages.TryGetValue(img, out var err)) checkedImages[img] = err = ImagePreprocessor.Problem(img);
                    if (err is not null) { problems.Add(new DataProblem(path, lineNo, err)); continue; }
                }
                examples.Add(ex);
            }
            // ArgumentException: an image path with characters no path may hold
            catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException or ArgumentException)
            {
                problems.Add(new DataProblem(path, lineNo, e is JsonException ? $"not valid JSON ({e.Message})" : e.Message));
            }
        }
        return new Result(examples, problems);
    }

    /// <summary>Loads and fails with a listing when any line is unusable (unless <paramref name="allowProblems"/>).</summary>
    public static List<ConversationExample> LoadStrict(string path, bool allowProblems = false)
    {
        var r = Load(path);
        if (r.Problems.Count > 0 && !allowProblems) throw Unusable(path, r.Problems);
        if (r.Examples.Count == 0) throw new InvalidDataException($"{path}: no usable examples");
        return r.Examples;
    }

    /// <summary>One error listing every problem by line, so a user fixes them all in one go.</summary>
    public static InvalidDataException Unusable(string path, IReadOnlyCollection<DataProblem> problems) =>
        new($"{path}: {problems.Count} unusable line(s): " + string.Join("; ", problems.OrderBy(p => p.Line).Select(p => $"line {p.Line}: {p.Problem}")));

    /// <summary>
    /// The file's lines with their numbers, decoded as strict UTF-8 (File.ReadLines would turn invalid bytes into
    /// U+FFFD silently). A line that is not UTF-8 or longer than <see cref="MaxLineBytes"/> comes back as a problem.
    /// </summary>
    static IEnumerable<(int Line, string? Text, string? Problem)> ReadLines(string path)
    {
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var buffer = new byte[1 << 16];
        var line = new MemoryStream();
        long length = 0;
        int lineNo = 1;
        int read;
        (int, string?, string?) Finish()
        {
            var bytes = line.ToArray();
            int n = bytes.Length;
            if (n > 0 && bytes[n - 1] == (byte)'\r') n--;
            int start = lineNo == 1 && n >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0; // UTF-8 BOM
            (int, string?, string?) result;
            if (length > MaxLineBytes) result = (lineNo, null, $"line is {length} bytes; the limit is {MaxLineBytes}");
            else
            {
                try
                {
                    result = (lineNo, utf8.GetString(bytes, start, n - start), null);
                }
                catch (DecoderFallbackException e)
                {
                    result = (lineNo, null, $"not valid UTF-8 text (bad byte at offset {e.Index + start} of the line)");
                }
            }
            line.SetLength(0);
            length = 0;
            lineNo++;
            return result;
        }
        void Append(int from, int count)
        {
            length += count;
            if (length <= MaxLineBytes) line.Write(buffer, from, count);
        }
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            int from = 0;
            for (int nl; (nl = Array.IndexOf(buffer, (byte)'\n', from, read - from)) >= 0; from = nl + 1)
            {
                Append(from, nl - from);
                yield return Finish();
            }
            Append(from, read - from);
        }
        if (length > 0) yield return Finish();
    }

    static ConversationExample Parse(string line, string dir, int lineNo)
    {
        var obj = JsonNode.Parse(line, documentOptions: Models.ConfigJson.Strict) as JsonObject ?? throw new InvalidDataException("line is not a JSON object");
        string id = obj["id"]?.ToString() ?? throw new InvalidDataException("missing 'id'");
        var convs = obj["conversations"] as JsonArray ?? throw new InvalidDataException("missing 'conversations' array");
        var turns = new List<ChatTurn>();
        foreach (var c in convs)
        {
            if (c is not JsonObject turn) throw new InvalidDataException($"a turn is not an object: {Models.ConfigJson.Show(c)}");
            string from = turn["from"]?.GetValue<string>() ?? throw new InvalidDataException("a turn has no 'from'");
            string value = turn["value"]?.GetValue<string>() ?? throw new InvalidDataException("a turn has no 'value'");
            if (value.Length > MaxTurnChars) throw new InvalidDataException($"turn {turns.Count + 1} has {value.Length} characters; the limit is {MaxTurnChars}");
            if (from is not ("human" or "gpt" or "user" or "assistant")) throw new InvalidDataException($"unknown role '{from}'");
            turns.Add(new ChatTurn(from, value));
        }
        if (!turns.Any(t => t.IsAssistant)) throw new InvalidDataException("no assistant ('gpt') turn to train on");
        if (turns.Where(t => t.IsAssistant).Any(t => string.IsNullOrWhiteSpace(t.Value))) throw new InvalidDataException("an assistant turn is empty");
        if (turns[0].IsAssistant) throw new InvalidDataException("conversation starts with an assistant turn");
        string? image = obj["image"]?.GetValue<string>();
        string? imagePath = image is null ? null : Path.GetFullPath(Path.Combine(dir, image));
        if (imagePath is not null && !turns[0].Value.Contains(ImageTag))
            turns[0] = turns[0] with { Value = ImageTag + "\n" + turns[0].Value };
        if (imagePath is null && turns.Any(t => t.Value.Contains(ImageTag))) throw new InvalidDataException($"text has {ImageTag} but the line has no 'image'");
        // one image fills one placeholder; a second would expand to image tokens with no features to put there
        int tags = turns.Sum(t => Occurrences(t.Value, ImageTag));
        if (tags > 1) throw new InvalidDataException($"the conversation has {tags} {ImageTag} tags; a line's one image needs exactly one");
        return new ConversationExample(id, imagePath, turns, obj["family"]?.GetValue<string>(), lineNo);
    }

    static int Occurrences(string text, string tag)
    {
        int n = 0;
        for (int i = text.IndexOf(tag, StringComparison.Ordinal); i >= 0; i = text.IndexOf(tag, i + tag.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    public static void Write(string path, IEnumerable<JsonObject> lines) =>
        Tensors.AtomicFile.WriteAllText(path, string.Join("\n", lines.Select(l => l.ToJsonString())) + "\n");
}
