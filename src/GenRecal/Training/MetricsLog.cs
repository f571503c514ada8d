using System.Text.Json.Nodes;

namespace GenRecal.Training;

/// <summary>metrics.jsonl: one JSON object per logged step (stage, step, lr, grad_norm, tokens_per_s, every loss term).</summary>
public sealed class MetricsLog(string path)
{
    public string Path => path;

    public void Append(JsonObject record)
    {
        File.AppendAllText(path, record.ToJsonString() + "\n");
    }

    /// <summary>On resume, drops records after the checkpoint so the log matches an uninterrupted run.</summary>
    public void KeepOnly(Func<JsonObject, bool> keep)
    {
        if (!File.Exists(path)) return;
        var kept = File.ReadAllLines(path).Where(l => l.Length > 0 && JsonNode.Parse(l) is JsonObject o && keep(o));
        Tensors.AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
    }

    public static List<JsonObject> Read(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();
}
