using System.Text.Json;
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

    /// <summary>On resume, drops records after the checkpoint so the log matches an uninterrupted run (and drops a
    /// torn last line, which would otherwise glue itself to the next record appended).</summary>
    public void KeepOnly(Func<JsonObject, bool> keep)
    {
        if (!File.Exists(path)) return;
        var kept = new List<string>();
        foreach (var (lineNo, line, record) in Records(path))
        {
            try
            {
                if (keep(record)) kept.Add(line);
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or ArgumentException or FormatException)
            {
                throw new InvalidDataException($"{path}: line {lineNo} lacks a usable stage_name or step ({e.Message})");
            }
        }
        Tensors.AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
    }

    public static List<JsonObject> Read(string path) => Records(path).Select(r => r.Record).ToList();

    /// <summary>
    /// The records with their line numbers. A last line that does not parse is a write cut short by a crash: an
    /// append-only log tolerates its torn tail and drops it. A bad line before the last is corruption and an error.
    /// </summary>
    static List<(int Line, string Text, JsonObject Record)> Records(string path)
    {
        var lines = File.ReadAllLines(path);
        int last = Array.FindLastIndex(lines, l => l.Length > 0);
        var records = new List<(int, string, JsonObject)>();
        for (int i = 0; i <= last; i++)
        {
            if (lines[i].Length == 0) continue;
            JsonObject? record;
            try
            {
                record = JsonNode.Parse(lines[i]) as JsonObject;
            }
            catch (JsonException)
            {
                record = null;
            }
            if (record is not null) records.Add((i + 1, lines[i], record));
            else if (i != last) throw new InvalidDataException($"{path}: line {i + 1} is not a JSON object");
        }
        return records;
    }
}
