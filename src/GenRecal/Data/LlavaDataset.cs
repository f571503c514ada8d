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

    public static Result Load(string path, bool checkImages = true)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var examples = new List<ConversationExample>();
        var problems = new List<DataProblem>();
        var checkedImages = new Dictionary<string, string?>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                var ex = Parse(line, dir, lineNo);
                if (ex.ImagePath is { } img && checkImages)
                {
                    if (!checkedImages.TryGetValue(img, out var err)) checkedImages[img] = err = CheckImage(img);
                    if (err is not null) { problems.Add(new DataProblem(path, lineNo, err)); continue; }
                }
                examples.Add(ex);
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException)
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
        if (r.Problems.Count > 0 && !allowProblems)
            throw new InvalidDataException($"{path}: {r.Problems.Count} unusable line(s): " +
                string.Join("; ", r.Problems.Take(10).Select(p => $"line {p.Line}: {p.Problem}")) + (r.Problems.Count > 10 ? "; ..." : ""));
        if (r.Examples.Count == 0) throw new InvalidDataException($"{path}: no usable examples");
        return r.Examples;
    }

    static ConversationExample Parse(string line, string dir, int lineNo)
    {
        var obj = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException("line is not a JSON object");
        string id = obj["id"]?.ToString() ?? throw new InvalidDataException("missing 'id'");
        var convs = obj["conversations"] as JsonArray ?? throw new InvalidDataException("missing 'conversations' array");
        var turns = new List<ChatTurn>();
        foreach (var c in convs)
        {
            string from = c?["from"]?.GetValue<string>() ?? throw new InvalidDataException("a turn has no 'from'");
            string value = c["value"]?.GetValue<string>() ?? throw new InvalidDataException("a turn has no 'value'");
            if (from is not ("human" or "gpt" or "user" or "assistant")) throw new InvalidDataException($"unknown role '{from}'");
            turns.Add(new ChatTurn(from, value));
        }
        if (!turns.Any(t => t.IsAssistant)) throw new InvalidDataException("no assistant ('gpt') turn to train on");
        if (turns.Where(t => t.IsAssistant).Any(t => string.IsNullOrWhiteSpace(t.Value))) throw new InvalidDataException("an assistant turn is empty");
        if (turns[0].IsAssistant) throw new InvalidDataException("conversation starts with an assistant turn");
        string? image = obj["image"]?.GetValue<string>();
        string? imagePath = image is null ? null : Path.GetFullPath(Path.Combine(dir, image));
        if (imagePath is not null && !turns[0].Value.Contains("<image>"))
            turns[0] = turns[0] with { Value = "<image>\n" + turns[0].Value };
        if (imagePath is null && turns.Any(t => t.Value.Contains("<image>"))) throw new InvalidDataException("text has <image> but the line has no 'image'");
        return new ConversationExample(id, imagePath, turns, obj["family"]?.GetValue<string>(), lineNo);
    }

    static string? CheckImage(string path)
    {
        if (!File.Exists(path)) return $"image not found: {path}";
        using var codec = SkiaSharp.SKCodec.Create(path);
        return codec is null ? $"image is not a decodable PNG or JPEG: {path}" : null;
    }

    public static void Write(string path, IEnumerable<JsonObject> lines) =>
        Tensors.AtomicFile.WriteAllText(path, string.Join("\n", lines.Select(l => l.ToJsonString())) + "\n");
}
